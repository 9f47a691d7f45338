"""QC configuration: gate thresholds (per category where it matters) and VLM judge limits.

The defaults live in `default_thresholds.yaml` next to this file (written by `ggt qc calibrate`);
a user file passed with `--config` overrides only the keys it names (a calibrated file names
every gate of every category, so none of the defaults' per-category values leak into it).

Example:
    >>> from ggt_datasets.qc.config import load_config
    >>> cfg = load_config()
    >>> cfg.threshold("geometry_error", "rain")
    0.01
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ggt_datasets import schema
from ggt_datasets.backends.base import JUDGE_FLAGS
from ggt_datasets.config_files import read_yaml_mapping
from ggt_datasets.qc.gates import GATE_NAMES

DEFAULT_CONFIG_FILE = Path(__file__).with_name("default_thresholds.yaml")
FLAGS: tuple[str, ...] = JUDGE_FLAGS  # the judge's flag names, defined once with the backends


@dataclass
class VLMThresholds:
    """Stage-2 limits: a pair is rejected below any minimum or with any flag in reject_flags."""

    min_d: float = 50.0
    min_f: float = 70.0
    min_score: float = 60.0
    reject_flags: tuple[str, ...] = FLAGS
    borderline: float = 10.0

    def __post_init__(self) -> None:
        for name in ("min_d", "min_f", "min_score"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise ValueError(f"vlm.{name} must be a number in 0-100, got {value!r}")
        self.reject_flags = tuple(self.reject_flags)
        unknown = set(self.reject_flags) - set(FLAGS)
        if unknown:
            raise ValueError(
                f"vlm.reject_flags: unknown flag(s) {sorted(unknown)}; expected some of {', '.join(FLAGS)}"
            )


@dataclass
class QCConfig:
    """Thresholds of every stage-1 gate (None = off), per-category overrides, VLM limits."""

    gates: dict[str, float | None]
    categories: dict[str, dict[str, float | None]] = field(default_factory=dict)
    scales: tuple[float, ...] = (1,)
    nr_metric: str | None = "niqe"
    vlm: VLMThresholds = field(default_factory=VLMThresholds)
    combiner: Any = None  # a qc.combiner.Combiner (or its dict from the YAML); None = no reject probability
    source: str = str(DEFAULT_CONFIG_FILE)  # where it was read from, for error messages

    def __post_init__(self) -> None:
        if isinstance(self.scales, (int, float)):
            self.scales = (self.scales,)
        if not self.scales or any(
            isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0 for s in self.scales
        ):
            raise ValueError(f"{self.source}: scales must be positive numbers (HQ size / LQ size), got {self.scales!r}")
        self.scales = tuple(self.scales)
        _check_gate_table(self.gates, f"{self.source}: gates")
        for cat, table in self.categories.items():
            if cat not in schema.CATEGORIES:
                raise ValueError(
                    f"{self.source}: categories: unknown category {cat!r}; "
                    f"expected one of {', '.join(schema.CATEGORIES)}"
                )
            _check_gate_table(table or {}, f"{self.source}: categories.{cat}")
        if isinstance(self.vlm, dict):
            self.vlm = VLMThresholds(**self.vlm)
        if isinstance(self.combiner, dict):
            from ggt_datasets.qc.combiner import Combiner

            try:
                self.combiner = Combiner(**self.combiner)
            except TypeError as err:
                raise ValueError(f"{self.source}: combiner: {err}") from None

    def threshold(self, gate: str, category: str) -> float | None:
        """The threshold of `gate` for `category` (a category override wins); None = gate off."""
        table = self.categories.get(category) or {}
        return table[gate] if gate in table else self.gates.get(gate)

    def as_dict(self) -> dict[str, Any]:
        return {
            "gates": dict(self.gates),
            "categories": {k: dict(v) for k, v in self.categories.items()},
            "scales": list(self.scales),
            "nr_metric": self.nr_metric,
            "vlm": {**self.vlm.__dict__, "reject_flags": list(self.vlm.reject_flags)},
            "combiner": self.combiner.as_dict() if self.combiner is not None else None,
        }


def _check_gate_table(table: dict[str, Any], where: str) -> None:
    for name, value in table.items():
        if name not in GATE_NAMES:
            raise ValueError(f"{where}: unknown gate {name!r}; expected some of {', '.join(GATE_NAMES)}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{where}.{name}: expected a number or null, got {value!r}")


def _read_yaml(path: Path) -> dict[str, Any]:
    return read_yaml_mapping(path, "QC config file", hint=f" (start from {DEFAULT_CONFIG_FILE})")


_KEYS = ("gates", "categories", "scales", "nr_metric", "vlm", "combiner")


def load_config(path: str | os.PathLike | None = None) -> QCConfig:
    """The default thresholds, with the keys of the YAML file at `path` (if any) laid over them."""
    data = _read_yaml(DEFAULT_CONFIG_FILE)
    source = str(DEFAULT_CONFIG_FILE)
    if path is not None:
        user = _read_yaml(Path(path))
        unknown = set(user) - set(_KEYS)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; expected some of {', '.join(_KEYS)}")
        for key in ("gates", "vlm"):
            data[key] = {**(data.get(key) or {}), **(user.pop(key, None) or {})}
        cats = dict(data.get("categories") or {})
        for cat, table in (user.pop("categories", None) or {}).items():
            cats[cat] = {**(cats.get(cat) or {}), **(table or {})}
        data["categories"] = cats
        data.update(user)
        source = str(path)
    return QCConfig(**{k: data[k] for k in _KEYS if k in data}, source=source)
