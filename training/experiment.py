"""`ggt experiment --config FILE`: the paper's training study, does GGT help restorers?

Each model is trained without GGT (existing pairs only) and with GGT (GGT pairs mixed `mix_ratio`
with the same existing pairs, through the loaders' mixing), once per seed, then evaluated on
every test set: paired sets (PSNR / SSIM, BasicSR conventions, center crops; LPIPS / DISTS when
their weights are present) and NR-only folders (MUSIQ, MANIQA, CLIPIQA, AFINE-NR when their
weights are present; VLM-R when `eval.vlm` is set). The results table gives mean and standard
deviation over seeds per model, arm and set, and the with-minus-without delta; a chart shows it.

Every (model, arm, seed) run is a folder OUT/runs/{model}/{arm}/seed{seed}/ that counts as
trained only with its completion marker (ggt_datasets.atomic), and its scores are cached in
OUT/scores/{model}/{arm}/seed{seed}/{set}.json: a rerun after a kill retrains only unfinished
runs, and adding a model or a seed trains only the new runs. A metric that cannot run is
reported as missing with its reason; nothing stands in for it.

Config (YAML):

    models: [nafnet, swinir]           # any --model of finetune.py, or {name, label, pretrained}
    seeds: [0, 1, 2]
    ggt_dataset: ggt-100k              # built folder or Hub id
    ggt_config: all
    existing_dataset: DF2K-pairs       # folder with lq/ + hq/, a built folder or a Hub id
    existing_config: all
    mix_ratio: "1:1"
    output_dir: experiments/ggt
    launcher: inprocess                # or "accelerate": each run as `accelerate launch finetune.py`
    train: {resolution: 256, train_batch_size: 16, max_train_steps: 100000}   # finetune.py flags
    test_sets:                         # default: the GGT test split
      - {name: ggt-test, paired: ggt-100k, config: all}
      - {name: realdeg, nr: /data/RealDeg}
    eval:
      resolution: 512                  # HQ center crop of paired sets
      nr_resolution: 512               # center crop of NR images
      max_samples: 500
      paired_metrics: [psnr, ssim, lpips, dists]
      nr_metrics: [musiq, maniqa, clipiqa, afine_nr, vlm_r]
      vlm: {name: gemini}              # for VLM-R; optional

Example:
    >>> from ggt_datasets.training.experiment import run_experiment
    >>> lines = run_experiment("experiment.yaml")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggt_datasets.atomic import is_complete, mark_complete
from ggt_datasets.config_files import load_yaml_dataclass

logger = logging.getLogger(__name__)
ARMS: tuple[str, ...] = ("without_ggt", "with_ggt")
_RESERVED = {"model", "dataset_name", "dataset_config_name", "mix_dataset", "mix_dataset_config_name", "mix_ratio",
             "output_dir", "validation_dataset_name", "validation_dataset_config_name", "seed",
             "pretrained_model_name_or_path"}
_EVAL_KEYS = {"resolution", "nr_resolution", "max_samples", "paired_metrics", "nr_metrics", "vlm"}


@dataclass
class ExperimentConfig:
    """The experiment file, checked when made."""

    ggt_dataset: str
    existing_dataset: str
    models: list[Any] = field(default_factory=lambda: ["nafnet"])
    seeds: list[int] = field(default_factory=lambda: [0])
    ggt_config: str = "all"
    existing_config: str = "all"
    mix_ratio: str = "1:1"
    output_dir: str = "experiment"
    launcher: str = "inprocess"
    train: dict[str, Any] = field(default_factory=dict)
    test_sets: list[dict[str, Any]] = field(default_factory=list)
    eval: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ggt_datasets.training.finetune import parse_mix_ratio
        from ggt_datasets.training.models import MODEL_NAMES

        if isinstance(self.models, str):
            self.models = [self.models]
        self.models = [m if isinstance(m, dict) else {"name": m} for m in self.models or []]
        if not self.models:
            raise ValueError("models: give at least one model")
        for i, m in enumerate(self.models):
            if set(m) - {"name", "label", "pretrained"} or m.get("name") not in MODEL_NAMES:
                raise ValueError(f"models[{i}]: {m!r}; expected a name of {', '.join(MODEL_NAMES)} "
                                 "(or {name, label, pretrained})")
        labels = [self.label(m) for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"models: labels must differ (give `label:`), got {labels}")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise ValueError(f"seeds: expected a list of integers, got {self.seeds!r}")
        if self.launcher not in ("inprocess", "accelerate"):
            raise ValueError(f"launcher must be 'inprocess' or 'accelerate', got {self.launcher!r}")
        parse_mix_ratio(self.mix_ratio)
        for key in ("train", "eval"):
            if not isinstance(getattr(self, key), dict):
                raise ValueError(f"{key}: expected a mapping, got {getattr(self, key)!r}")
        clash = _RESERVED & set(self.train)
        if clash:
            raise ValueError(f"train: {sorted(clash)} are set by the experiment itself; use the top-level keys")
        if set(self.eval) - _EVAL_KEYS:
            raise ValueError(f"eval: unknown keys {sorted(set(self.eval) - _EVAL_KEYS)}; known: {sorted(_EVAL_KEYS)}")
        if not self.test_sets:
            self.test_sets = [{"name": "ggt-test", "paired": self.ggt_dataset, "config": self.ggt_config}]
        names = []
        for i, t in enumerate(self.test_sets):
            if not isinstance(t, dict) or set(t) - {"name", "paired", "config", "nr"} or ("paired" in t) == ("nr" in t):
                raise ValueError(f"test_sets[{i}]: {t!r}; expected {{name, paired: DATASET[, config]}} "
                                 "or {name, nr: FOLDER}")
            names.append(str(t.get("name") or f"set{i}"))
        if len(set(names)) != len(names):
            raise ValueError(f"test_sets: names must differ, got {names}")

    @staticmethod
    def label(model: dict[str, Any]) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", str(model.get("label") or model["name"]))

    def runs(self) -> list[tuple[dict[str, Any], str, int]]:
        """(model, arm, seed) of every run, in training order."""
        return [(m, arm, s) for m in self.models for arm in ARMS for s in self.seeds]

    def run_dir(self, model: dict[str, Any], arm: str, seed: int) -> Path:
        return Path(self.output_dir) / "runs" / self.label(model) / arm / f"seed{seed}"


def _model_alias(p: Path, data: dict[str, Any]) -> dict[str, Any]:
    if "model" in data:
        if "models" in data:
            raise ValueError(f"{p}: give models (a list) or model, not both")
        data["models"] = [data.pop("model")]
    return data


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read an experiment YAML file; errors name the file and the field. `model: X` means `models: [X]`."""
    required = ("ggt_dataset", "existing_dataset")
    return load_yaml_dataclass(path, ExperimentConfig, "experiment config", required=required, prepare=_model_alias)


def run_flags(cfg: ExperimentConfig, model: dict[str, Any], arm: str, seed: int) -> list[str]:
    """finetune.py flags of one run; both arms validate on the GGT test split."""
    flags = ["--model", model["name"], "--output_dir", str(cfg.run_dir(model, arm, seed)), "--seed", str(seed),
             "--validation_dataset_name", cfg.ggt_dataset, "--validation_dataset_config_name", cfg.ggt_config]
    if model.get("pretrained"):
        flags += ["--pretrained_model_name_or_path", str(model["pretrained"])]
    if arm == "without_ggt":
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


def train_run(cfg: ExperimentConfig, model: dict[str, Any], arm: str, seed: int) -> Path:
    """Train one run (in this process, or through `accelerate launch`), then mark its folder complete."""
    flags = run_flags(cfg, model, arm, seed)
    if cfg.launcher == "accelerate":
        script = Path(__file__).with_name("finetune.py")
        cmd = [sys.executable, "-m", "accelerate.commands.launch", str(script), *flags]
        logger.info("running %s", " ".join(cmd))
        subprocess.run(cmd, check=True)
    else:
        from ggt_datasets.training.finetune import main, parse_args

        main(parse_args(flags))
    folder = cfg.run_dir(model, arm, seed)
    mark_complete(folder, {"model": model["name"], "arm": arm, "seed": seed, "flags": flags})
    return folder


def run_experiment(config: str | os.PathLike | ExperimentConfig, skip_training: bool = False) -> list[str]:
    """Train the runs not yet complete (unless skip_training), evaluate, write the report; returns its lines."""
    from ggt_datasets.training.experiment_eval import Evaluator
    from ggt_datasets.training.experiment_report import write_report

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    evaluator = Evaluator(cfg)
    scores: dict[tuple[str, str, int], dict[str, dict[str, float]]] = {}
    for model, arm, seed in cfg.runs():
        folder = cfg.run_dir(model, arm, seed)
        if not is_complete(folder):
            if skip_training:
                raise FileNotFoundError(f"{folder}: not trained (no completion marker); run without --skip_training")
            train_run(cfg, model, arm, seed)
        scores[(cfg.label(model), arm, seed)] = evaluator.scores(folder, model, out / "scores" / cfg.label(model)
                                                                 / arm / f"seed{seed}")
    return write_report(cfg, out, scores, evaluator.missing)


def _add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--config", required=True, help="experiment YAML (see `ggt_datasets.training.experiment`)")
    p.add_argument("--output_dir", default=None, help="override output_dir of the config")
    p.add_argument("--skip_training", action="store_true", help="only evaluate runs trained before")
    p.set_defaults(func=_run)
    return p


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """`ggt experiment --config FILE`."""
    _add_arguments(subparsers.add_parser("experiment", help="train restorers with and without GGT data and compare",
                                         description=__doc__.split("\n\n")[0]))


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.output_dir:
        cfg.output_dir = args.output_dir
    for line in run_experiment(cfg, skip_training=args.skip_training):
        print(line)
    print(f"\nwritten: {Path(cfg.output_dir) / 'results.md'}, results.json, results.csv, results.png")
    return 0


if __name__ == "__main__":
    parsed = _add_arguments(argparse.ArgumentParser(prog="python -m ggt_datasets.training.experiment")).parse_args()
    logging.basicConfig(level=logging.INFO)
    sys.exit(parsed.func(parsed))
