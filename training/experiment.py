"""`ggt experiment --config FILE`: the paper's with/without-GGT comparison for one restorer.

Trains the same model twice with the same settings: on existing pairs only ("without GGT"), and
on GGT pairs mixed 1:1 with the same existing pairs ("with GGT"), then evaluates both on the GGT
test split (PSNR / SSIM on RGB, BasicSR conventions, center crops) and on a no-reference set
(real LQ photos, no targets), and writes comparison.md, comparison.json and comparison.png.

Config (YAML):

    model: nafnet                  # any --model of finetune.py
    ggt_dataset: ggt-100k          # built folder or Hub id
    ggt_config: all
    existing_dataset: DF2K-pairs   # folder with lq/ + hq/, a built folder or a Hub id
    existing_config: all           # when existing_dataset is a dataset
    mix_ratio: "1:1"
    output_dir: experiments/nafnet
    launcher: inprocess            # or "accelerate": each run as `accelerate launch finetune.py`
    train:                         # any finetune.py flags, without the leading --
      resolution: 256
      train_batch_size: 16
      max_train_steps: 100000
      mixed_precision: bf16
    eval:
      resolution: 512              # HQ center crop for PSNR / SSIM
      max_samples: 500             # test pairs (the paper's test set has 500)
      nr_set: null                 # folder of LQ photos; default: the LQ images of the GGT test split
      nr_metric: null              # a metric of ggt_datasets.metrics (e.g. musiq, weights needed);
                                   # default: the weight-free proxy below

No-reference score: when no learned NR metric is named (or its weights are missing offline), the
runner reports `nr_proxy_sharpness`: the variance of the Laplacian of the BT.601 luma (0-255),
averaged over the set. It is a weight-free *proxy* for detail/sharpness, not a perceptual quality
metric: it also rises with noise and artefacts. Read it next to the full-reference numbers.

Example:
    >>> from ggt_datasets.training.experiment import run_experiment
    >>> table = run_experiment("experiment.yaml")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)
RUNS: tuple[str, ...] = ("without_ggt", "with_ggt")
NR_PROXY = "nr_proxy_sharpness"


@dataclass
class ExperimentConfig:
    """The experiment file, checked when made."""

    ggt_dataset: str
    existing_dataset: str
    model: str = "nafnet"
    ggt_config: str = "all"
    existing_config: str = "all"
    mix_ratio: str = "1:1"
    output_dir: str = "experiment"
    launcher: str = "inprocess"
    train: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ggt_datasets.training.finetune import parse_mix_ratio
        from ggt_datasets.training.models import MODEL_NAMES

        if self.model not in MODEL_NAMES:
            raise ValueError(f"model: unknown {self.model!r}; expected one of {', '.join(MODEL_NAMES)}")
        if self.launcher not in ("inprocess", "accelerate"):
            raise ValueError(f"launcher must be 'inprocess' or 'accelerate', got {self.launcher!r}")
        parse_mix_ratio(self.mix_ratio)
        for key in ("train", "eval"):
            if not isinstance(getattr(self, key), dict):
                raise ValueError(f"{key}: expected a mapping, got {getattr(self, key)!r}")
        reserved = {"model", "dataset_name", "dataset_config_name", "mix_dataset", "mix_dataset_config_name",
                    "mix_ratio", "output_dir", "validation_dataset_name", "validation_dataset_config_name"}
        clash = reserved & set(self.train)
        if clash:
            raise ValueError(f"train: {sorted(clash)} are set by the experiment itself; use the top-level keys")
        unknown = set(self.eval) - {"resolution", "max_samples", "nr_set", "nr_metric", "nr_resolution"}
        if unknown:
            raise ValueError(f"eval: unknown keys {sorted(unknown)}")


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read an experiment YAML file; errors name the file and the field."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: experiment config not found")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a YAML mapping")
    known = set(ExperimentConfig.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{p}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    missing = {"ggt_dataset", "existing_dataset"} - set(data)
    if missing:
        raise ValueError(f"{p}: missing {sorted(missing)}")
    try:
        return ExperimentConfig(**data)
    except ValueError as err:
        raise ValueError(f"{p}: {err}") from err


def run_flags(cfg: ExperimentConfig, run: str) -> list[str]:
    """finetune.py flags of one run; both runs validate on the GGT test split."""
    out = str(Path(cfg.output_dir) / run)
    flags = ["--model", cfg.model, "--output_dir", out,
             "--validation_dataset_name", cfg.ggt_dataset, "--validation_dataset_config_name", cfg.ggt_config]
    if run == "without_ggt":
        flags += ["--dataset_name", cfg.existing_dataset, "--dataset_config_name", cfg.existing_config]
    else:
        flags += ["--dataset_name", cfg.ggt_dataset, "--dataset_config_name", cfg.ggt_config,
                  "--mix_dataset", cfg.existing_dataset, "--mix_dataset_config_name", cfg.existing_config,
                  "--mix_ratio", str(cfg.mix_ratio)]
    for key, value in cfg.train.items():
        if value is True:
            flags.append(f"--{key}")
        elif value not in (False, None):
            flags += [f"--{key}", str(value)]
    return flags


def train_run(cfg: ExperimentConfig, run: str) -> Path:
    """Train one run (in this process, or through `accelerate launch`); returns its folder."""
    flags = run_flags(cfg, run)
    if cfg.launcher == "accelerate":
        script = Path(__file__).with_name("finetune.py")
        cmd = [sys.executable, "-m", "accelerate.commands.launch", str(script), *flags]
        logger.info("running %s", " ".join(cmd))
        subprocess.run(cmd, check=True)
    else:
        from ggt_datasets.training.finetune import main, parse_args

        main(parse_args(flags))
    return Path(cfg.output_dir) / run


def load_restorer(folder: Path, model: str):
    """The trained model of a run folder."""
    if model == "osediff":
        from ggt_datasets.training.osediff import OSEDiff

        return OSEDiff.from_pretrained(folder)
    from ggt_datasets.training.models import load_pretrained

    return load_pretrained(folder)


def nr_proxy_sharpness(images: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
    """Variance of the 3x3 Laplacian of BT.601 luma (0-255) per image: a weight-free detail proxy."""
    import torch
    import torch.nn.functional as F

    y = 16 + 65.481 * images[:, 0] + 128.553 * images[:, 1] + 24.966 * images[:, 2]
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=y.dtype)
    lap = F.conv2d(y[:, None].double(), k.double()[None, None])
    return lap.flatten(1).var(dim=1)


def nr_scorer(name: str | None):
    """(label, fn(images NCHW [0,1]) -> per-image scores). Falls back to the proxy with a note."""
    if name:
        try:
            from ggt_datasets.metrics import create_metric

            metric = create_metric(name)
            return name, lambda x: metric(x)
        except Exception as err:  # no such metric, extra not installed, weights missing offline
            logger.warning("NR metric %s unavailable (%s); using %s instead", name, err, NR_PROXY)
    return NR_PROXY, nr_proxy_sharpness


def nr_images(cfg: ExperimentConfig) -> list["torch.Tensor"]:  # noqa: F821
    """The no-reference set as CHW float tensors (center crops of eval.nr_resolution, default 512)."""
    import torch

    from ggt_datasets.images import load_rgb

    size = int(cfg.eval.get("nr_resolution", 512))
    folder = cfg.eval.get("nr_set")
    arrays = []
    if folder:
        from ggt_datasets import schema

        files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in schema.IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"eval.nr_set {folder}: no images found")
        arrays = [load_rgb(f) for f in files[: int(cfg.eval.get("max_samples", 500))]]
    else:
        from ggt_datasets.loaders.paired import load_image, pair_view
        from ggt_datasets.training.finetune import load_pairs_source

        ds = pair_view(load_pairs_source(cfg.ggt_dataset, cfg.ggt_config, "test"))
        n = min(len(ds), int(cfg.eval.get("max_samples", 500)))
        arrays = [load_image(ds[i]["lq"], f"{cfg.ggt_dataset} test {ds[i]['id']} lq") for i in range(n)]
    out = []
    for arr in arrays:
        h, w = arr.shape[:2]
        s = min(size, h, w)
        top, left = (h - s) // 2, (w - s) // 2
        out.append(torch.from_numpy(np.ascontiguousarray(arr[top:top + s, left:left + s])).permute(2, 0, 1).float() / 255)
    return out


def evaluate_run(model: Any, cfg: ExperimentConfig, val_batch: dict, nr_set: list, scorer) -> dict[str, float]:
    """Full-reference metrics on the GGT test crops and the NR score on the NR set."""
    import contextlib

    import torch

    from ggt_datasets.training.finetune import evaluate
    from ggt_datasets.training.osediff import restore

    metrics, _ = evaluate(model, val_batch, torch.device("cpu") if not torch.cuda.is_available() else torch.device("cuda"),
                          contextlib.nullcontext)
    label, fn = scorer
    multiple = getattr(model, "size_multiple", 8)
    scores = []
    for img in nr_set:
        arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        restored = restore(model, [arr], multiple=multiple)[0]
        t = torch.from_numpy(np.array(restored)).permute(2, 0, 1).float()[None] / 255
        scores.append(float(fn(t).mean()))
    metrics[label] = float(np.mean(scores)) if scores else float("nan")
    return metrics


def write_report(results: dict[str, dict[str, float]], out: Path, cfg: ExperimentConfig) -> list[str]:
    """comparison.json, comparison.md (returned as lines) and comparison.png (one panel per metric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(results.values())))
    lower_better = {"lpips"}
    rows = list(results)
    lines = [f"# {cfg.model}: with vs without GGT ({cfg.mix_ratio} GGT : existing)", "",
             "| run | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for run in rows:
        lines.append(f"| {run} | " + " | ".join(f"{results[run][n]:.4f}" for n in names) + " |")
    lines += ["", f"Full-reference metrics: center crops of the GGT test split of `{cfg.ggt_dataset}` ({cfg.ggt_config}).",
              f"{NR_PROXY}: variance of the Laplacian of luma, a weight-free detail proxy, not a perceptual metric."
              if NR_PROXY in names else "No-reference metric: " + ", ".join(n for n in names if n not in ("psnr", "ssim", "lpips"))]
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    (out / "comparison.json").write_text(json.dumps({"model": cfg.model, "mix_ratio": cfg.mix_ratio,
                                                     "ggt_dataset": cfg.ggt_dataset, "existing_dataset": cfg.existing_dataset,
                                                     "results": results}, indent=2) + "\n")
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2))
    axes = np.atleast_1d(axes)
    colors = {"lq_input": "#bbbbbb", "without_ggt": "#4c72b0", "with_ggt": "#dd8452"}
    for ax, name in zip(axes, names):
        values = [results[r][name] for r in rows]
        ax.bar(rows, values, color=[colors.get(r, "#55a868") for r in rows])
        ax.set_title(name + (" (lower better)" if name in lower_better else ""))
        ax.tick_params(axis="x", labelrotation=20)
        finite = [v for v in values if np.isfinite(v)]
        if finite and name in ("psnr", "ssim"):
            lo, hi = min(finite), max(finite)
            pad = 0.5 * (hi - lo) + 1e-3  # zoom in: the differences are what matters
            ax.set_ylim(max(0.0, lo - pad), hi + pad)
    fig.suptitle(f"{cfg.model}: with vs without GGT")
    fig.tight_layout()
    fig.savefig(out / "comparison.png", dpi=100)
    plt.close(fig)
    return lines


def run_experiment(config: str | os.PathLike | ExperimentConfig, skip_training: bool = False) -> list[str]:
    """Train both runs (unless skip_training), evaluate, write the report; returns the table lines."""
    import argparse as _argparse

    import torch

    from ggt_datasets.training.finetune import _baseline, fidelity, load_validation_batch

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not skip_training:
        for run in RUNS:
            train_run(cfg, run)
    scale = int(cfg.train.get("scale", 1))
    val_args = _argparse.Namespace(validation_dataset_name=cfg.ggt_dataset, validation_dataset_config_name=cfg.ggt_config,
                                   dataset_name=cfg.ggt_dataset, dataset_config_name=cfg.ggt_config, cache_dir=None,
                                   max_validation_samples=int(cfg.eval.get("max_samples", 500)),
                                   validation_resolution=int(cfg.eval.get("resolution", 512)), resolution=512, scale=scale)
    val_batch = load_validation_batch(val_args)
    if val_batch is None:
        raise ValueError(f"{cfg.ggt_dataset}: no test split to evaluate on")
    scorer = nr_scorer(cfg.eval.get("nr_metric"))
    nr_set = nr_images(cfg)
    results: dict[str, dict[str, float]] = {}
    base = _baseline(val_batch["lq"], tuple(val_batch["hq"].shape[-2:]))
    results["lq_input"] = fidelity(base, val_batch["hq"])
    results["lq_input"][scorer[0]] = float(np.mean([float(scorer[1](x[None]).mean()) for x in nr_set])) if nr_set else float("nan")
    for run in RUNS:
        model = load_restorer(out / run, cfg.model)
        if torch.cuda.is_available():
            model = model.cuda()
        results[run] = evaluate_run(model, cfg, val_batch, nr_set, scorer)
        del model
    return write_report(results, out, cfg)


def _add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--config", required=True, help="experiment YAML (see `ggt_datasets.training.experiment`)")
    p.add_argument("--output_dir", default=None, help="override output_dir of the config")
    p.add_argument("--skip_training", action="store_true", help="only evaluate runs trained before")
    p.set_defaults(func=_run)
    return p


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """`ggt experiment --config FILE`."""
    _add_arguments(subparsers.add_parser("experiment", help="train a restorer with and without GGT data and compare",
                                         description=__doc__.split("\n\n")[0]))


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.output_dir:
        cfg.output_dir = args.output_dir
    for line in run_experiment(cfg, skip_training=args.skip_training):
        print(line)
    print(f"\nwritten: {Path(cfg.output_dir) / 'comparison.md'}, comparison.json, comparison.png")
    return 0


if __name__ == "__main__":
    parsed = _add_arguments(argparse.ArgumentParser(prog="python -m ggt_datasets.training.experiment")).parse_args()
    logging.basicConfig(level=logging.INFO)
    sys.exit(parsed.func(parsed))
