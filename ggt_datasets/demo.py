"""`ggt demo`: every capability end to end on built-in data, offline, in a few minutes on 2 cores.

sample real-photo pairs -> build the dataset -> load every config back with `datasets` ->
contact sheet; then each part that is installed adds its step (synthesis, QC, metrics, loaders,
training). Everything lands under --out; the last lines say where.
"""

from __future__ import annotations

import argparse
import importlib
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from ggt_datasets import schema
from ggt_datasets.atomic import atomic_write_bytes
from ggt_datasets.images import encode_png


def contact_sheet(built: Path, path: Path, split: str = "test", tile: int = 192) -> Path:
    """Save a PNG with one row per category: LQ | HQ of the first pair of `split`."""
    import datasets

    rows = []
    for cat in schema.CATEGORIES:
        try:
            ds = datasets.load_dataset(str(built), cat, split=split)
        except (ValueError, KeyError):  # a category with no pairs (all rejected by QC, say)
            continue
        pair = ds[0]
        cells = []
        for side in (schema.LQ, schema.HQ):
            img = pair[side].convert("RGB")
            img.thumbnail((tile, tile))
            canvas = Image.new("RGB", (tile, tile + 16), "white")
            canvas.paste(img, ((tile - img.width) // 2, 16))
            ImageDraw.Draw(canvas).text((4, 2), f"{cat} {side.upper()}", fill="black")
            cells.append(np.asarray(canvas))
        rows.append(np.concatenate(cells, axis=1))
    atomic_write_bytes(path, encode_png(np.concatenate(rows, axis=0)))
    return path


def load_table(built: Path) -> list[str]:
    """Load every config and split with `datasets.load_dataset` and return a table of counts."""
    import datasets

    lines = [f"{'config':<10} " + " ".join(f"{s:>6}" for s in schema.SPLITS)]
    declared = set(datasets.get_dataset_config_names(str(built)))  # a build declares only what it holds
    for config in (c for c in schema.CONFIGS if c in declared):
        ds = datasets.load_dataset(str(built), config)
        lines.append(f"{config:<10} " + " ".join(f"{ds[s].num_rows if s in ds else 0:>6}" for s in schema.SPLITS))
    return lines


def _foundation(out: Path) -> list[str]:
    from ggt_datasets.build import build_dataset
    from ggt_datasets.sample import make_sample

    raw, built = out / "raw", out / "ggt-100k"
    make_sample(raw, per_category=4, test_per_category=2, seed=0, size=256, progress=False)
    report = build_dataset(raw, built, progress=False)
    sheet = contact_sheet(built, out / "contact_sheet.png")
    return [f"sample pairs from real photos: {raw}", report.summary(), *load_table(built), f"contact sheet: {sheet}"]


def _release_layout(out: Path) -> list[str]:
    """A folder laid out like the published GGT-100K release, built with `--layout auto`."""
    from ggt_datasets.build import build_dataset, dry_run
    from ggt_datasets.testing.release_trees import ggt_release

    tree = ggt_release(out / "release-like")
    inferred = dry_run(tree.src, "auto")
    report = build_dataset(tree.src, out / "release-like" / "ggt-100k", layout="auto", progress=False)
    return [
        f"a release-like tree (GGT-100K/{{Train,Test}}/{{Rain,Hazy,LowLight,Old-Photo}}/{{LQ,HQ}}): {tree.src}",
        "`ggt build --layout auto --dry-run` infers:",
        *(f"  {line}" for line in inferred.rstrip().splitlines()),
        report.summary(),
        *load_table(out / "release-like" / "ggt-100k"),
    ]


def _build_synthesised(out: Path) -> list[str]:
    from ggt_datasets.build import build_dataset

    built = out / "synth" / "ggt-classical"
    report = build_dataset(out / "synth" / "ggt-raw", built, progress=False)
    sheet = contact_sheet(built, out / "synth" / "contact_sheet.png")
    return [report.summary(), f"LQ | classical-baseline HQ per category: {sheet}"]


# (title, module, call): later parts add a `demo` function in their module. A part that is not
# installed (its module missing) is reported and skipped.
STEPS: list[tuple[str, str, Callable[[object, Path], list[str]]]] = [
    ("the published release's layout (ggt build --layout auto)", "ggt_datasets.layouts",
     lambda m, out: _release_layout(out)),
    ("synthesis (classical generator, offline)", "ggt_datasets.synth.demo",
     lambda m, out: m.demo(out / "raw", out / "synth")),
    ("quality control (stage 1 gates)", "ggt_datasets.qc.demo",
     lambda m, out: m.demo(out / "synth" / "ggt-raw", out / "qc")),
    ("build the synthesised pairs (QC rejects left out)", "ggt_datasets.synth.demo",
     lambda m, out: _build_synthesised(out)),
    ("metrics (LQ vs HQ, test split)", "ggt_datasets.metrics.demo",
     lambda m, out: m.demo(out / "ggt-100k", out / "metrics")),
    ("loaders (paired crops, 1:1 mixing)", "ggt_datasets.loaders.demo",
     lambda m, out: m.demo(out / "ggt-100k", out / "loaders")),
    ("training (finetune an official-format checkpoint)", "ggt_datasets.training.demo",
     lambda m, out: m.demo(out / "ggt-100k", out / "training")),
    ("generator study (ggt bench-mfm: classical, fixed vs adaptive prompts)", "ggt_datasets.bench.demo",
     lambda m, out: m.run(out / "bench")),
]


def run_demo(out: str | Path = "ggt-demo") -> int:
    """Run every step; returns 0 when all steps that are present succeeded, else 1."""
    import logging

    import datasets

    datasets.disable_progress_bars()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # optional kernels it looks for, not ours
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    steps = [("foundation: sample -> build -> load_dataset", None, lambda m, o: _foundation(o)), *STEPS]
    for title, module, call in steps:
        start = time.perf_counter()
        print(f"\n== {title}")
        try:
            mod = importlib.import_module(module) if module else None
        except ModuleNotFoundError as err:
            if err.name is None or not module.startswith(err.name):
                raise  # a module of the part exists but something it needs is missing: a real failure
            print(f"   (not available: {err})")
            continue
        try:
            for line in call(mod, out):
                print(f"   {line}")
            print(f"   [{time.perf_counter() - start:.1f} s]")
        except Exception:
            failed.append(title)
            print(f"   FAILED:\n{traceback.format_exc()}")
    print(f"\nEverything is under {out.resolve()}" + (f"; failed steps: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="run every step end to end on built-in data (offline, a few minutes)",
        description="Make sample pairs from real photos, build and load the dataset, then run each "
        "installed part (synthesis, QC, metrics, loaders, training, the generator study) on it. Offline.")
    p.add_argument("--out", default="ggt-demo", help="folder for everything the demo makes (default ggt-demo)")
    p.set_defaults(func=lambda args: run_demo(args.out))
