"""Benchmark `ggt build` against datasets' imagefolder + parquet and against plain copying.

Generates a raw layout of 1024 px PNG pairs from real photos (a few unique pairs, copied under
new ids to reach the size asked for), then times, each in a fresh process:

  ours      build_dataset(RAW, OUT)                                  (default verify "fast", all cores)
  ours:header / ours:full   the same with --verify header (checksums only) / full (Pillow decodes all)
  release   build_dataset(RELEASE, OUT, layout="auto") on a GGT-100K-like tree of the same files
            (GGT-100K/{Train}/{Rain,Hazy,...}/{LQ,HQ}/ID.png, hard links: no extra disk)
  datasets  load_dataset("imagefolder", data_dir=RAW) + embed bytes + to_parquet
  copy      shutil.copyfile of every image file (the floor: moving the bytes once)

and prints pairs/s, MB/s, the ratios, and the peak RSS of our build (main process and workers
together, sampled) at two
input sizes, to show memory does not grow with the input.

    python benchmarks/build.py --gb 2 --workdir /tmp/ggt-bench-build
    python benchmarks/build.py --gb 0.3 --skip-datasets      # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, shutil, sys, time
from pathlib import Path
kind, raw, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
shutil.rmtree(out, ignore_errors=True)
t = time.perf_counter()
if kind.startswith("ours"):
    from ggt_datasets.build import build_dataset
    build_dataset(raw, out, progress=False, verify=kind.partition(":")[2] or "fast")
elif kind == "release":
    from ggt_datasets.build import build_dataset
    build_dataset(raw, out, layout="auto", progress=False)
elif kind == "datasets":
    import datasets
    from datasets.table import embed_table_storage
    datasets.disable_progress_bars()
    ds = datasets.load_dataset("imagefolder", data_dir=str(raw), split="train", cache_dir=str(out / "cache"))
    ds = ds.with_format("arrow").map(embed_table_storage, batched=True, batch_size=64).with_format(None)
    ds.to_parquet(str(out / "data.parquet"))
elif kind == "copy":
    out.mkdir(parents=True)
    for i, p in enumerate(sorted(raw.rglob("*.png"))):
        shutil.copyfile(p, out / f"{i}.png")
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def make_raw(raw: Path, gigabytes: float, size: int = 1024, unique: int = 12) -> tuple[int, int]:
    """Write pairs of `size` px PNGs until about `gigabytes` GB; returns (pairs, bytes)."""
    import cv2
    import numpy as np

    from ggt_datasets.degrade import degrade
    from ggt_datasets.images import encode_png
    from ggt_datasets.sample import available_photos

    rng = np.random.default_rng(0)
    photos = list(available_photos().values())
    cats = ["mixed", "rain", "haze", "snow", "low_light", "old_photo"]
    originals = []
    for i in range(unique):
        hq = cv2.resize(photos[i % len(photos)], (size, size), interpolation=cv2.INTER_CUBIC)
        lq = degrade(hq, cats[i % 6], rng)
        originals.append((cats[i % 6], encode_png(lq, 1), encode_png(hq, 1)))
    pairs = total = 0
    while total < gigabytes * 1e9:
        cat, lq, hq = originals[pairs % unique]
        for side, data in (("lq", lq), ("hq", hq)):
            folder = raw / "train" / cat / side
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"p{pairs:06d}.png").write_bytes(data)
            total += len(data)
        pairs += 1
    return pairs, total


RELEASE_FOLDERS = {
    "mixed": "Mixed",
    "rain": "Rain",
    "haze": "Hazy",
    "snow": "Snow",
    "low_light": "Low-light",
    "old_photo": "Old Photo",
}


def make_release(raw: Path, release: Path) -> Path:
    """The raw layout's files re-arranged as the GGT-100K download is (hard links, no copy); returns SRC."""
    import os

    src = release / "GGT-100K"
    for path in sorted(raw.rglob("*.png")):
        split, cat, side = path.relative_to(raw).parts[:3]
        dest = src / split.title() / RELEASE_FOLDERS[cat] / side.upper() / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, dest)
    return src


def run(kind: str, raw: Path, out: Path) -> dict:
    """Run one contender in a fresh process; peak RSS is the sum over it and its workers, sampled; CPU seconds
    (user + system, workers included, Python start-up and imports too) from getrusage."""
    import resource

    import psutil

    subprocess.run(["sync"], check=False)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, kind, str(raw), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{kind} failed:\n{stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_mb": peak / 2**20, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0, help="raw data size in GB (default 2)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ggt-bench-build"))
    parser.add_argument("--skip-datasets", action="store_true", help="leave out the (slow) datasets imagefolder run")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    small, large = args.workdir / "raw-small", args.workdir / "raw"
    n_small, b_small = make_raw(small, args.gb / 2)
    n, nbytes = make_raw(large, args.gb)
    release_small, release = make_release(small, args.workdir / "rel-small"), make_release(large, args.workdir / "rel")
    print(
        f"raw: {n} pairs of 1024 px PNG, {nbytes / 1e9:.2f} GB "
        f"({n_small} pairs, {b_small / 1e9:.2f} GB for the RSS check)"
    )
    kinds = [
        "ours",
        "copy",
        *([] if args.skip_datasets else ["datasets"]),
        "ours",
        "ours:header",
        "ours:full",
        "release",
    ]
    results = {}
    for kind in kinds:  # ours twice: the second run has a warm page cache like the others
        results[kind] = run(
            kind, release if kind == "release" else large, args.workdir / f"out-{kind.replace(':', '-')}"
        )
    small_rss = run("ours", small, args.workdir / "out-small")["peak_rss_mb"]
    release_small_rss = run("release", release_small, args.workdir / "out-rel-small")["peak_rss_mb"]
    ours, copy = results["ours"], results["copy"]
    mb = nbytes / 1e6
    print(f"{'':16} {'seconds':>8} {'pairs/s':>8} {'MB/s':>8} {'peak RSS MB':>12} {'CPU s':>7}")
    names = {
        "ours": "ggt build",
        "ours:header": "verify header",
        "ours:full": "verify full",
        "release": "release auto",
        "datasets": "datasets",
        "copy": "copy",
    }
    for kind, r in results.items():
        print(
            f"{names[kind]:16} {r['seconds']:8.2f} {n / r['seconds']:8.1f} {mb / r['seconds']:8.1f} "
            f"{r['peak_rss_mb']:12.0f} {r['cpu_s']:7.2f}"
        )
    if "datasets" in results:
        print(
            "speed-up over datasets imagefolder + parquet: "
            f"{results['datasets']['seconds'] / ours['seconds']:.2f}x (target >= 3x)"
        )
    print(f"time over plain copy: {ours['seconds'] / copy['seconds']:.2f}x (target <= 2x)")
    print(
        "release layout (--layout auto) time over plain copy: "
        f"{results['release']['seconds'] / copy['seconds']:.2f}x (target <= 2x)"
    )
    print(
        f"verify cost: fast (default) {ours['seconds'] / results['ours:header']['seconds']:.2f}x, "
        f"full {results['ours:full']['seconds'] / results['ours:header']['seconds']:.2f}x the header-only build time"
    )
    print(
        f"peak RSS of ggt build: {ours['peak_rss_mb']:.0f} MB at {nbytes / 1e9:.2f} GB, "
        f"{small_rss:.0f} MB at {b_small / 1e9:.2f} GB (target < 1024 MB, flat)"
    )
    print(
        f"peak RSS of the release build: {results['release']['peak_rss_mb']:.0f} MB at {nbytes / 1e9:.2f} GB, "
        f"{release_small_rss:.0f} MB at {b_small / 1e9:.2f} GB (target < 1024 MB, flat as the input doubles)"
    )


if __name__ == "__main__":
    main()
