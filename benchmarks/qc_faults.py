"""Does QC reject unfaithful targets and keep faithful ones? A planted-fault benchmark.

From real photos (scikit-image, matplotlib; crops and flips give ~70 base images), each base
gets a category (round robin), LQ = ggt_datasets.degrade.degrade(photo, category, rng), and
nine HQ targets: the clean photo and a mildly sharpened/denoised version (faithful), and one per
fault kind (ggt_datasets.qc.faults): inserted object, text, colour cast, shift 2-5%, rescale /
crop 5-10%, replaced scene, heavy over-smoothing.

It prints, per kind, the rejection rate of
  - baseline: the lab tool's two gates alone (SSIM >= 0.30, chroma drift <= 0.10, no categories),
  - stage 1: our metric gates with default_thresholds.yaml,
  - stage 1+2 (with --judge fake): plus the VLM judge, here the *fake* API server's statistical
    judge (F = SSIM, D = noise/haze/darkness removal): NOT a vision model, only a plumbing check,
and the false-rejection rate (faithful kinds). Targets for stage 1: >= 90% of shift,
rescale_crop, colour_cast and replaced_scene rejected at <= 5% false rejection.

    python benchmarks/qc_faults.py [--per-photo 9] [--size 384] [--judge fake] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict

import cv2
import numpy as np

from ggt_datasets.degrade import degrade
from ggt_datasets.images import encode_png
from ggt_datasets.qc.config import load_config
from ggt_datasets.qc.faults import FAULTS, faithful_variant
from ggt_datasets.qc.gates import metric_scores
from ggt_datasets.qc.pipeline import metric_reasons
from ggt_datasets.qc.report import gate_of
from ggt_datasets.schema import CATEGORIES

TARGET_KINDS = ("shift", "rescale_crop", "colour_cast", "replaced_scene")
FAITHFUL = ("faithful", "faithful_proc")


def real_photos() -> list[tuple[str, np.ndarray]]:
    import matplotlib
    import skimage.data

    from ggt_datasets.images import load_rgb

    out = [(n, getattr(skimage.data, n)()[..., :3]) for n in ("astronaut", "chelsea", "coffee", "rocket", "retina", "immunohistochemistry")]
    left, right, _ = skimage.data.stereo_motorcycle()
    out += [("motorcycle_left", left), ("motorcycle_right", right)]
    out.append(("grace_hopper", load_rgb(f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg")))
    return [(n, np.ascontiguousarray(a)) for n, a in out]


def base_images(per_photo: int, size: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Random crops (aspect 1, 4:3 or 3:4; 60-100% of the short side), half of them flipped."""
    bases = []
    for name, photo in real_photos():
        h, w = photo.shape[:2]
        for k in range(per_photo):
            aspect = (1.0, 4 / 3, 3 / 4)[k % 3]
            frac = rng.uniform(0.6, 1.0)
            ch = int(min(h, w / aspect) * frac)
            cw = int(ch * aspect)
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            crop = photo[y : y + ch, x : x + cw]
            crop = crop[:, ::-1] if k % 2 else crop
            out_h = size if aspect >= 1 else round(size / aspect)
            out_w = round(out_h * aspect)
            bases.append((name, cv2.resize(np.ascontiguousarray(crop), (out_w, out_h), interpolation=cv2.INTER_AREA)))
    return bases


def lab_baseline(scores: dict[str, float]) -> bool:
    """True = rejected by the lab tool's two gates alone."""
    return scores["structure_ssim"] < 0.30 or scores["chroma_drift"] > 0.10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-photo", type=int, default=8, help="crops per photo (9 photos)")
    ap.add_argument("--size", type=int, default=384, help="short side of each base image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", help="thresholds YAML (default: the shipped defaults)")
    ap.add_argument("--dump", help="write every pair's scores as JSON lines here (for tuning thresholds)")
    ap.add_argument("--judge", choices=("none", "fake"), default="none", help="stage 2 with the fake API server's judge")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    config = load_config(args.config)
    bases = base_images(args.per_photo, args.size, rng)
    vlm = server = None
    if args.judge == "fake":
        from ggt_datasets.backends import make_vlm
        from ggt_datasets.synth.fake_api import FakeAPIServer

        server = FakeAPIServer().__enter__()
        vlm = make_vlm("gemini", model="fake-judge", base_url=server.base_url, api_key="test", api_version="v1beta")
    kinds = [*FAITHFUL, *FAULTS]
    rej = {s: Counter() for s in ("baseline", "stage1", "stage12")}
    total: Counter[str] = Counter()
    caught_by: dict[str, Counter[str]] = defaultdict(Counter)
    cat_frr: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    cat_kind: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    dump = open(args.dump, "w") if args.dump else None
    t0 = time.perf_counter()
    for i, (name, base) in enumerate(bases):
        cat = CATEGORIES[i % len(CATEGORIES)]
        lq = degrade(base, cat, rng)
        others = [b for n, b in bases if n != name]
        other = others[int(rng.integers(len(others)))]
        targets = {"faithful": base, "faithful_proc": faithful_variant(base, rng)}
        targets.update({k: f(base, rng, other=other) for k, f in FAULTS.items()})
        for kind in kinds:
            hq = targets[kind]
            scores = metric_scores(lq, hq, config.scales)
            reasons = metric_reasons(scores, cat, config)
            total[kind] += 1
            if dump:
                dump.write(json.dumps({"kind": kind, "category": cat, "photo": name, **scores}) + "\n")
            rej["baseline"][kind] += lab_baseline(scores)
            rej["stage1"][kind] += bool(reasons)
            caught_by[kind].update({gate_of(r) for r in reasons})
            cat_kind[kind, cat][0] += bool(reasons)
            cat_kind[kind, cat][1] += 1
            if kind in FAITHFUL:
                cat_frr[cat][0] += bool(reasons)
                cat_frr[cat][1] += 1
            if vlm is not None:
                if not reasons:
                    from ggt_datasets.qc.judge import judge_pair, vlm_reasons

                    verdict = judge_pair(vlm, encode_png(lq, 1), encode_png(hq, 1), cat, None)
                    reasons = vlm_reasons(verdict, config.vlm)
                rej["stage12"][kind] += bool(reasons)
    seconds = time.perf_counter() - t0
    if server is not None:
        server.__exit__(None, None, None)

    print(f"QC planted-fault benchmark: {len(bases)} base images ({args.size} px short side) from "
          f"{len(real_photos())} real photos, categories round robin, seed {args.seed}; {seconds:.1f} s")
    cols = ["baseline", "stage1"] + (["stage12"] if vlm is not None else [])
    head = {"baseline": "lab 2 gates", "stage1": "stage 1", "stage12": "stage 1+2 (fake judge)"}
    print("\n| kind            |   n | " + " | ".join(f"{head[c]:>22s}" for c in cols) + " | stage-1 gates that caught it")
    print("|-----------------|-----|" + "|".join("-" * 24 for _ in cols) + "|------------------------------")
    for kind in kinds:
        label = f"{kind} (FRR)" if kind in FAITHFUL else kind
        gates = ", ".join(f"{g} {n}" for g, n in caught_by[kind].most_common(4))
        print(f"| {label:15s} | {total[kind]:3d} | " + " | ".join(f"{rej[c][kind] / total[kind]:21.1%} " for c in cols) + f" | {gates}")
    frr = {c: sum(rej[c][k] for k in FAITHFUL) / sum(total[k] for k in FAITHFUL) for c in cols}
    print("\nfalse rejection of faithful pairs: " + ", ".join(f"{head[c]} {frr[c]:.1%}" for c in cols))
    print("stage-1 false rejection per category: " + ", ".join(f"{c} {a}/{n}" for c, (a, n) in sorted(cat_frr.items())))
    for kind in FAULTS:
        print(f"stage-1 {kind} rejected per category: "
              + ", ".join(f"{c} {cat_kind[kind, c][0]}/{cat_kind[kind, c][1]}" for c in CATEGORIES))
    ok = all(rej["stage1"][k] / total[k] >= 0.9 for k in TARGET_KINDS) and frr["stage1"] <= 0.05
    print(f"stage-1 target (>= 90% of {', '.join(TARGET_KINDS)} rejected at <= 5% false rejection): {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
