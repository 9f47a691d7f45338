"""`ggt bench-mfm --config bench.yaml`: which generator (and prompt mode) makes the best HQ targets?

The paper's generator study. Every generator x prompt mode restores

- a fidelity set: clean HQ photos (a folder; default: the built-in photos of `ggt sample`)
  degraded per category with seeded parameters, stored in OUT/inputs/fidelity/params.jsonl beside
  the LQ/HQ files (the folder is complete only with its marker); scored PSNR/SSIM on Y (BasicSR)
  and LPIPS/DISTS against the clean photo;
- a perception set: real LQ photos (a folder), scored by NR metrics (MUSIQ, MANIQA, CLIPIQA,
  AFINE-NR) and VLM-R (when `vlm` is set);

each as a synthesis run, OUT/{fidelity,perception}/{LABEL}/ (LABEL = generator label + prompt mode),
so a rerun or an added generator pays nothing twice; per-image scores are cached in OUT/scores/.
Human preference comes from arena sessions over the same runs (`ggt review --arena
OUT/perception/A OUT/perception/B ...`; the folder names are the labels). A metric that cannot run
(weights missing, pyiqa not installed, no VLM) is reported as missing with the reason. See
ggt_datasets.bench.report for the tables and charts.

Config (YAML):

    output_dir: bench
    generators:                        # any backend of backends/models.yaml, any model id
      - {name: gemini, model: gemini-3.1-flash-image-preview, label: nano-banana-2}
      - {name: classical}
    prompt_modes: [fixed, adaptive]
    vlm: {name: gemini}                # writes adaptive prompts and rates VLM-R; optional
    fidelity: {photos: null, categories: [rain, haze], per_category: 2, size: 512, seed: 0,
               metrics: [psnr, ssim, lpips, dists]}
    perception: {photos: real-lq/, category: mixed, metrics: [musiq, maniqa, clipiqa, afine_nr, vlm_r]}
    arena: []                          # arena folders; default: every arena.jsonl under output_dir
    synth: {concurrency: 4, rpm: null, max_attempts: 3}
    backend_config: null               # YAML merged over models.yaml

API keys come from the environment (GEMINI_API_KEY, OPENAI_API_KEY), never from this file.

Example:
    >>> from ggt_datasets.bench.mfm import run_bench
    >>> lines = run_bench("bench.yaml")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ggt_datasets import schema
from ggt_datasets.atomic import atomic_write_bytes, atomic_write_jsonl, is_complete, mark_complete
from ggt_datasets.config_files import load_yaml_dataclass

PROMPT_MODES = ("fixed", "adaptive")
SETS = ("fidelity", "perception")
FR_DEFAULT = ("psnr", "ssim", "lpips", "dists")
NR_DEFAULT = ("musiq", "maniqa", "clipiqa", "afine_nr", "vlm_r")
_GEN_KEYS = {"name", "model", "label", "base_url", "api_version", "timeout"}
_FID_KEYS = {"photos", "categories", "per_category", "size", "seed", "metrics"}
_PER_KEYS = {"photos", "category", "metrics", "max_images"}
_SYNTH_KEYS = {"concurrency", "rpm", "max_attempts", "backoff"}


def _check_keys(where: str, given: dict[str, Any], known: set[str]) -> None:
    if not isinstance(given, dict):
        raise ValueError(f"{where}: expected a mapping, got {given!r}")
    unknown = set(given) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")


@dataclass
class BenchConfig:
    """The bench file, checked when made."""

    generators: list[dict[str, Any]]
    prompt_modes: list[str] = field(default_factory=lambda: ["fixed", "adaptive"])
    output_dir: str = "bench"
    vlm: dict[str, Any] | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)
    perception: dict[str, Any] = field(default_factory=dict)
    arena: list[str] = field(default_factory=list)
    synth: dict[str, Any] = field(default_factory=dict)
    backend_config: str | None = None
    n_boot: int = 500

    def __post_init__(self) -> None:
        from ggt_datasets.backends import GENERATORS, VLMS

        if not isinstance(self.generators, list) or not self.generators:
            raise ValueError("generators: give a list of at least one {name: BACKEND, model: ID}")
        for i, g in enumerate(self.generators):
            _check_keys(f"generators[{i}]", g, _GEN_KEYS)
            if g.get("name") not in GENERATORS:
                raise ValueError(f"generators[{i}].name: {g.get('name')!r} is not one of {', '.join(GENERATORS)}")
        bad = [m for m in self.prompt_modes if m not in PROMPT_MODES]
        if bad or not self.prompt_modes:
            raise ValueError(f"prompt_modes: expected some of {', '.join(PROMPT_MODES)}, got {self.prompt_modes!r}")
        if self.vlm is not None:
            _check_keys("vlm", self.vlm, {"name", "model", "base_url", "api_version", "timeout"})
            if self.vlm.get("name") not in VLMS:
                raise ValueError(f"vlm.name: {self.vlm.get('name')!r} is not one of {', '.join(VLMS)}")
        _check_keys("fidelity", self.fidelity, _FID_KEYS)
        _check_keys("perception", self.perception, _PER_KEYS)
        _check_keys("synth", self.synth, _SYNTH_KEYS)
        for cat in self.fidelity.get("categories") or ():
            schema.check_category(cat)
        if int(self.fidelity.get("size", 256)) < 32 or int(self.fidelity.get("per_category", 1)) < 1:
            raise ValueError("fidelity: size must be >= 32 and per_category >= 1")
        labels = [label for g in self.generators for label in self.labels(g)]
        if len(set(labels)) != len(labels):
            raise ValueError(f"generators: labels must differ (give `label:`), got {labels}")

    @staticmethod
    def labels(g: dict[str, Any]) -> list[str]:
        return [g.get("label") or g["name"]]

    def runs(self) -> list[tuple[str, dict[str, Any], str]]:
        """(run label, generator entry, prompt mode) for every generator x prompt mode."""
        out = []
        for g in self.generators:
            base = re.sub(r"[^A-Za-z0-9._-]+", "_", str(g.get("label") or g["name"]))
            out += [(f"{base}-{mode}", g, mode) for mode in self.prompt_modes]
        return out


def load_config(path: str | os.PathLike) -> BenchConfig:
    """Read a bench YAML file; errors name the file and the field."""
    return load_yaml_dataclass(path, BenchConfig, "bench config", required=("generators",))


# --- the fidelity set ---------------------------------------------------------------------------
def _square(img: np.ndarray, size: int) -> np.ndarray:
    """A center square of the photo, resized to size x size."""
    import cv2

    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = np.ascontiguousarray(img[top:top + s, left:left + s])
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_CUBIC)


def image_files(folder: str | os.PathLike, what: str) -> list[Path]:
    """The image files under `folder` (ggt_datasets.images.image_files); errors name `what` (e.g. the config field)."""
    from ggt_datasets import images

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} {root}: folder not found")
    files = images.image_files(root)
    if not files:
        raise FileNotFoundError(f"{what} {root}: no images ({', '.join(images.IMAGE_SUFFIXES)})")
    return files


def _clean_photos(folder: str | None) -> dict[str, np.ndarray]:
    from ggt_datasets.images import load_rgb
    from ggt_datasets.sample import available_photos

    if not folder:
        return available_photos()
    return {p.relative_to(folder).as_posix(): load_rgb(p) for p in image_files(folder, "fidelity.photos")}


def prepare_fidelity_set(cfg: BenchConfig) -> Path:
    """OUT/inputs/fidelity/{lq,hq}/{category}/{id}.png + params.jsonl; made once, reused after."""
    from ggt_datasets.degrade import degrade, sample_params
    from ggt_datasets.images import encode_png

    f = cfg.fidelity
    spec = {"photos": f.get("photos"), "categories": list(f.get("categories") or schema.CATEGORIES),
            "per_category": int(f.get("per_category", 1)), "size": int(f.get("size", 256)),
            "seed": int(f.get("seed", 0))}
    root = Path(cfg.output_dir) / "inputs" / "fidelity"
    if is_complete(root):
        stored = json.loads((root / ".complete").read_text())
        if stored != spec:
            raise ValueError(f"{root} was made with {stored}, the config asks for {spec}; "
                             "use another output_dir or remove that folder")
        return root
    photos = _clean_photos(spec["photos"])
    names = sorted(photos)
    rows = []
    for c, cat in enumerate(spec["categories"]):
        for k in range(spec["per_category"]):
            name = names[(c * spec["per_category"] + k) % len(names)]
            hq = _square(photos[name], spec["size"])
            rng = np.random.default_rng([spec["seed"], c, k])  # one stream per item: reproducible alone
            params = sample_params(cat, rng)
            lq = degrade(hq, cat, rng, params)
            item = f"{cat}-{k:03d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', Path(name).stem)}"
            atomic_write_bytes(root / "lq" / cat / f"{item}.png", encode_png(lq, compress_level=1))
            atomic_write_bytes(root / "hq" / cat / f"{item}.png", encode_png(hq, compress_level=1))
            rows.append({"id": item, "category": cat, "photo": name, "rng_seed": [spec["seed"], c, k],
                         "params": params})
    atomic_write_jsonl(root / "params.jsonl", json.loads(json.dumps(rows, default=float)))
    mark_complete(root, spec)
    return root


# --- the synthesis runs ---------------------------------------------------------------------------
def _opts(entry: dict[str, Any], cfg: BenchConfig) -> dict[str, Any]:
    opts = {k: entry.get(k) for k in ("model", "base_url", "api_version", "timeout")}
    return opts | {"config_path": cfg.backend_config}


def make_vlm_of(cfg: BenchConfig):
    """The configured VLM, or None."""
    from ggt_datasets.backends import make_vlm

    if cfg.vlm is None:
        return None
    return make_vlm(cfg.vlm["name"], **_opts(cfg.vlm, cfg))


def synthesize(cfg: BenchConfig, label: str, entry: dict[str, Any], mode: str, set_name: str, lq_dir: Path,
               category: str | None, vlm: Any) -> Path:
    """One synthesis run OUT/{set}/{label} over lq_dir (resumed: done items and cached answers are reused)."""
    from ggt_datasets.backends import FatalBackendError, make_generator
    from ggt_datasets.synth.config import SynthConfig
    from ggt_datasets.synth.export import write_run_templates
    from ggt_datasets.synth.inputs import register_inputs
    from ggt_datasets.synth.ledger import Ledger, check_settings
    from ggt_datasets.synth.prompts import load_templates, template_hashes
    from ggt_datasets.synth.runner import run_synthesis

    run = Path(cfg.output_dir) / set_name / label
    generator = make_generator(entry["name"], **_opts(entry, cfg))
    templates = load_templates()
    used = {k: v for k, v in templates.items() if (k in schema.CATEGORIES) == (mode == "fixed")}
    check_settings(run, {"generator": generator.name, "model": generator.model, "prompt_mode": mode,
                         "vlm": vlm.name if vlm and mode == "adaptive" else None,
                         "vlm_model": vlm.model if vlm and mode == "adaptive" else None, "scale": 1,
                         "templates": template_hashes(used)})
    write_run_templates(run, used)
    s = cfg.synth
    config = SynthConfig(prompt_mode=mode, concurrency=int(s.get("concurrency", 4)), rpm=s.get("rpm"),
                         max_attempts=int(s.get("max_attempts", 3)), backoff_base=float(s.get("backoff", 2.0)),
                         progress=False, backend_config=cfg.backend_config)
    with Ledger(run) as ledger:
        register_inputs(ledger, lq_dir, category, "test")
        summary = run_synthesis(ledger, generator, config, vlm if mode == "adaptive" else None, templates)
    if summary.fatal:
        raise FatalBackendError(f"{label} ({set_name}): {summary.fatal}")
    return run


def run_items(run: Path) -> list[dict[str, Any]]:
    """The items of a run (every state) with paths, cost and latency, from its ledger."""
    from ggt_datasets.synth.ledger import Ledger

    with Ledger(run, create=False) as ledger:
        rows = ledger.items()
        return [{**r, "hq_file": str(ledger.path(r["hq_path"])) if r.get("hq_path") else None} for r in rows]


def run_bench(config: str | os.PathLike | BenchConfig, vlm: Any = None) -> list[str]:
    """Run (or resume) every generation, score, tally the arena, write the report; returns the table lines.

    `vlm` (an object of the VLM protocol) replaces the config's `vlm` entry.
    """
    from ggt_datasets.bench.report import write_report

    cfg = config if isinstance(config, BenchConfig) else load_config(config)
    out = Path(cfg.output_dir)
    vlm = vlm if vlm is not None else make_vlm_of(cfg)
    if "adaptive" in cfg.prompt_modes and vlm is None:
        raise ValueError("prompt_modes has adaptive: set vlm: {name: gemini|openai} (it writes the prompts)")
    per_dir = cfg.perception.get("photos")
    if per_dir and not Path(per_dir).is_dir():
        raise FileNotFoundError(f"perception.photos {per_dir}: folder not found")
    fid_root = prepare_fidelity_set(cfg)
    runs: dict[str, dict[str, Any]] = {}
    for label, entry, mode in cfg.runs():
        runs[label] = {"generator": entry["name"], "prompt_mode": mode, "sets": {}}
        runs[label]["sets"]["fidelity"] = synthesize(cfg, label, entry, mode, "fidelity", fid_root / "lq", None, vlm)
        if per_dir:
            runs[label]["sets"]["perception"] = synthesize(cfg, label, entry, mode, "perception", Path(per_dir),
                                                           cfg.perception.get("category", "mixed"), vlm)
    return write_report(cfg, out, fid_root, runs, vlm)
