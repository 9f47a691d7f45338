"""The table of metrics: what each measures, its direction and range, and the files it needs.

`create_metric(name, **opts)` returns a callable with one signature for all of them:
`metric(pred, ref=None) -> tensor (N,)`, inputs float RGB NCHW in [0, 1].

Example:
    >>> from ggt_datasets.metrics import create_metric, get_spec
    >>> get_spec("lpips").kind, get_spec("lpips").lower_better
    ('FR', True)
    >>> psnr_y = create_metric("psnr", test_y_channel=True, crop_border=4)
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["METRICS", "FidelityMetric", "MetricSpec", "create_metric", "get_spec", "list_metrics"]

FR, NR = "FR", "NR"


@dataclass(frozen=True)
class MetricSpec:
    """One metric: full-reference or not, which way is better, its range, what it loads."""

    name: str
    kind: str  # "FR" (needs the reference) or "NR"
    lower_better: bool
    range: tuple[float, float]  # nominal; learned scores can stray a little outside
    weights: tuple[str, ...] = ()  # paths in the weights folder (weights.WEIGHT_FILES)
    source: str = "pyiqa"  # "ggt" (ours, pure torch), "pyiqa", or "vlm"
    pyiqa_opts: dict[str, Any] = field(default_factory=dict)  # options for pyiqa.create_metric
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in (FR, NR):
            raise ValueError(f"MetricSpec {self.name}: kind must be FR or NR, got {self.kind!r}")


_LPIPS_ALEX = ("pyiqa/LPIPS_v0.1_alex-df73285e.pth", "checkpoints/alexnet-owt-7be5be79.pth")
_AFINE = ("pyiqa/afine.pth", "clip/ViT-B-32.pt")
_INF = math.inf

METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("psnr", FR, False, (0.0, _INF), source="ggt",
                   description="PSNR in dB, BasicSR's calculate_psnr"),
        MetricSpec("ssim", FR, False, (0.0, 1.0), source="ggt",
                   description="SSIM, BasicSR's calculate_ssim (11x11 Gaussian, sigma 1.5)"),
        MetricSpec("lpips", FR, True, (0.0, 1.0), _LPIPS_ALEX,
                   description="LPIPS v0.1, AlexNet"),
        MetricSpec("lpips-vgg", FR, True, (0.0, 1.0),
                   ("pyiqa/LPIPS_v0.1_vgg-a78928a0.pth", "checkpoints/vgg16-397923af.pth"),
                   description="LPIPS v0.1, VGG16"),
        MetricSpec("dists", FR, True, (0.0, 1.0),
                   ("pyiqa/DISTS_weights-f5e65c96.pth", "checkpoints/vgg16-397923af.pth"),
                   description="DISTS (structure and texture similarity)"),
        MetricSpec("niqe", NR, True, (0.0, 100.0), ("pyiqa/niqe_modelparameters.mat",),
                   description="NIQE on Y (natural scene statistics)"),
        MetricSpec("musiq", NR, False, (0.0, 100.0), ("pyiqa/musiq_koniq_ckpt-e95806b9.pth",),
                   description="MUSIQ trained on KonIQ-10k"),
        MetricSpec("maniqa", NR, False, (0.0, 1.0), ("pyiqa/ckpt_koniq10k.pt",),
                   description="MANIQA trained on KonIQ-10k"),
        MetricSpec("maniqa-pipal", NR, False, (0.0, 1.0), ("pyiqa/MANIQA_PIPAL-ae6d356b.pth",),
                   description="MANIQA trained on PIPAL"),
        MetricSpec("clipiqa", NR, False, (0.0, 1.0), ("clip/RN50.pt",),
                   description="CLIP-IQA (CLIP RN50, antonym prompts)"),
        MetricSpec("topiq_nr", NR, False, (0.0, 1.0),
                   ("pyiqa/cfanet_nr_koniq_res50-9a73138b.pth",
                    "timm/resnet50.a1_in1k.safetensors"),
                   description="TOPIQ no-reference, ResNet50, KonIQ-10k"),
        MetricSpec("afine_nr", NR, True, (-2.0, 2.0), _AFINE,
                   description="A-FINE naturalness term (sides of 32 px multiples, batch 1)"),
        MetricSpec("afine_fr", FR, True, (-2.0, 2.0), _AFINE,
                   description="A-FINE fidelity term"),
        MetricSpec("afine_all", FR, True, (-_INF, 2.0), _AFINE,
                   description="A-FINE, fidelity and naturalness combined"),
        MetricSpec("afine_all_scale", FR, True, (0.0, 100.0), _AFINE,
                   description="A-FINE combined, scaled to 0-100"),
        MetricSpec("vlm_r", NR, False, (0.0, 100.0), source="vlm",
                   description="VLM rating of perceptual quality, 0-100 (needs vlm=...)"),
    )
}


def list_metrics(kind: str | None = None) -> list[str]:
    """Names of the registered metrics, optionally only FR or NR ones."""
    if kind not in (None, FR, NR):
        raise ValueError(f"kind must be 'FR', 'NR' or None, got {kind!r}")
    return [name for name, spec in METRICS.items() if kind in (None, spec.kind)]


def get_spec(name: str) -> MetricSpec:
    """The MetricSpec of `name`; unknown names raise ValueError with a suggestion."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key in METRICS:
        return METRICS[key]
    close = difflib.get_close_matches(str(key), list(METRICS), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown metric {name!r}{hint} Known: {', '.join(METRICS)}")


class FidelityMetric:
    """PSNR or SSIM with fixed options, behind the common metric signature."""

    def __init__(
        self,
        spec: MetricSpec,
        crop_border: int = 0,
        test_y_channel: bool = False,
        quantize: bool = True,
        device: Any = None,
    ):
        from ggt_datasets.metrics import fidelity

        self.spec = spec
        self.fn = fidelity.psnr if spec.name == "psnr" else fidelity.ssim
        self.opts = {"crop_border": crop_border, "test_y_channel": test_y_channel, "quantize": quantize}
        self.device = device

    def __call__(self, pred, ref=None, **_: Any):
        if ref is None:
            raise ValueError(f"{self.spec.name} is full-reference: give the reference images")
        if self.device is not None:
            pred, ref = pred.to(self.device), ref.to(self.device)
        return self.fn(pred, ref, **self.opts)

    def __repr__(self) -> str:
        return f"FidelityMetric({self.spec.name}, {self.opts})"


def create_metric(name: str, **opts: Any):
    """Build metric `name`; call it as metric(pred, ref=None) -> float64 tensor (N,).

    Options: psnr/ssim take crop_border, test_y_channel, quantize, device. pyiqa metrics take
    device, weights_dir and pyiqa's own options; vlm_r takes vlm (a VLM backend object).
    """
    spec = get_spec(name)
    if spec.source == "ggt":
        return FidelityMetric(spec, **opts)
    if spec.source == "vlm":
        from ggt_datasets.metrics.vlm import VLMRMetric

        return VLMRMetric(spec, **opts)
    from ggt_datasets.metrics.learned import PyiqaMetric

    return PyiqaMetric(spec, **opts)
