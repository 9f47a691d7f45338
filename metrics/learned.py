"""Learned metrics from pyiqa, loaded from the weights folder, with pyiqa's quirks handled.

What this adds over `pyiqa.create_metric`:

- every file is looked for in the weights folder first (weights.py); a missing one is a clear
  MissingWeightsError, never a download attempt or a network timeout;
- inputs are checked (float NCHW in [0, 1], same shapes for FR) with ValueError, not assert;
  values up to 0.05 outside [0, 1] (a restorer's overshoot) are clamped;
- A-FINE: images are centre-cropped to sides that are multiples of 32 (at most 31 px lost),
  run one at a time (it takes batch 1) on a copy (it normalises its input in place);
- timm backbones come from plain files in the folder; MANIQA's ViT is built without
  pretrained weights because its checkpoint replaces every one of them (a strict load).

pyiqa is an optional dependency (extra `metrics`) under a non-commercial license.

Example:
    >>> from ggt_datasets.metrics import create_metric
    >>> lpips = create_metric("lpips", device="cpu")   # doctest: +SKIP
    >>> lpips(pred, ref)                                # doctest: +SKIP
    tensor([0.2311], dtype=torch.float64)
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ggt_datasets._optional import require
from ggt_datasets.metrics.registry import FR, MetricSpec
from ggt_datasets.metrics.weights import require_weights, use_weights_dir

__all__ = ["PyiqaMetric"]

logger = logging.getLogger(__name__)

AFINE_MULTIPLE = 32
# A restorer's output may overshoot [0, 1] a little: clamped. Further out is an input error.
_OVERSHOOT = 0.05
# timm backbones pyiqa builds with pretrained=True: arch module -> weights file in the folder,
# or None where the metric's own checkpoint overwrites the backbone (strict load).
_TIMM_BACKBONES: dict[str, dict[str, str | None]] = {
    "maniqa": {"pyiqa.archs.maniqa_arch": None},
    "maniqa-pipal": {"pyiqa.archs.maniqa_arch": None},
    "topiq_nr": {"pyiqa.archs.topiq_arch": "timm/resnet50.a1_in1k.safetensors"},
}


class _TimmFromFile(types.ModuleType):
    """Stands in for `timm` inside one pyiqa arch module: create_model reads a local file."""

    def __init__(self, timm: types.ModuleType, file: Path | None):
        super().__init__("timm")
        self._timm, self._file = timm, file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._timm, name)

    def create_model(self, name: str, pretrained: bool = False, **kwargs: Any):
        if pretrained and self._file is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": str(self._file)}
        return self._timm.create_model(name, pretrained=pretrained and self._file is not None, **kwargs)


@contextlib.contextmanager
def _timm_from_folder(metric: str, folder: Path) -> Iterator[None]:
    patched = []
    try:
        for module_name, rel in _TIMM_BACKBONES.get(metric, {}).items():
            module = importlib.import_module(module_name)
            patched.append((module, module.timm))
            module.timm = _TimmFromFile(module.timm, folder / rel if rel else None)
        yield
    finally:
        for module, original in patched:
            module.timm = original


def _clip_needs_setuptools(err: ImportError) -> ImportError:
    if "pkg_resources" in str(err):
        return ImportError(
            "the `clip` package pyiqa uses imports pkg_resources, which setuptools >= 81 "
            "no longer ships: pip install 'setuptools<81'"
        )
    return err


class PyiqaMetric:
    """A pyiqa metric behind the common signature metric(pred, ref=None) -> tensor (N,)."""

    def __init__(
        self,
        spec: MetricSpec,
        device: Any = None,
        weights_dir: str | Path | None = None,
        **pyiqa_opts: Any,
    ):
        torch = require("torch", "metrics")
        pyiqa = require("pyiqa", "metrics")
        folder = require_weights(spec.name, weights_dir)
        self.spec = spec
        opts = {**spec.pyiqa_opts, **pyiqa_opts}
        if spec.name.startswith("afine"):
            opts.setdefault("clip_backbone", str(folder / "clip" / "ViT-B-32.pt"))
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        chatter = io.StringIO()  # pyiqa prints "Loading pretrained model ..." to stdout
        try:
            with (
                use_weights_dir(folder),
                _timm_from_folder(spec.name, folder),
                contextlib.redirect_stdout(chatter),
            ):
                self.model = pyiqa.create_metric(spec.name, device=self.device, **opts)
        except ImportError as err:
            raise _clip_needs_setuptools(err) from err
        if chatter.getvalue().strip():
            logger.info("%s: %s", spec.name, chatter.getvalue().strip())
        self._torch = torch

    def _check(self, x: Any, what: str):
        torch = self._torch
        if not torch.is_tensor(x):
            raise ValueError(f"{self.spec.name}: {what} must be a torch tensor (use to_tensor)")
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] not in (1, 3, 4):
            raise ValueError(f"{self.spec.name}: {what} must be NCHW RGB, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{self.spec.name}: {what} must be float in [0, 1], got {x.dtype}")
        x = x[:, :3].float()
        lo, hi = float(x.min()), float(x.max())
        if lo < -_OVERSHOOT or hi > 1 + _OVERSHOOT:
            raise ValueError(
                f"{self.spec.name}: {what} must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]"
            )
        return x.clamp(0.0, 1.0)

    def __call__(self, pred, ref=None, **_: Any):
        pred = self._check(pred, "prediction")
        if self.spec.kind == FR:
            if ref is None:
                raise ValueError(f"{self.spec.name} is full-reference: give the reference images")
            ref = self._check(ref, "reference")
            if ref.shape != pred.shape:
                raise ValueError(
                    f"{self.spec.name}: prediction {tuple(pred.shape)} and reference "
                    f"{tuple(ref.shape)} differ in shape"
                )
        else:
            ref = None
        if self.spec.name.startswith("afine"):
            return self._afine(pred, ref)
        with self._torch.no_grad():
            out = self.model(pred, ref) if ref is not None else self.model(pred)
        return out.detach().reshape(-1).double()

    def _afine(self, pred, ref):
        h, w = pred.shape[-2:]
        ch, cw = h - h % AFINE_MULTIPLE, w - w % AFINE_MULTIPLE
        if ch == 0 or cw == 0:
            raise ValueError(f"{self.spec.name} needs images of at least 32x32 pixels, got {w}x{h}")
        top, left = (h - ch) // 2, (w - cw) // 2
        crop = (slice(None), slice(None), slice(top, top + ch), slice(left, left + cw))
        scores = []
        with self._torch.no_grad():
            for i in range(pred.shape[0]):  # batch 1 only; it normalises its input in place
                p = pred[i : i + 1][crop].clone()
                r = ref[i : i + 1][crop].clone() if ref is not None else None
                scores.append(self.model(p, r).reshape(-1) if r is not None else self.model(p).reshape(-1))
        return self._torch.cat(scores).detach().double()

    def __repr__(self) -> str:
        return f"PyiqaMetric({self.spec.name}, device={self.device})"
