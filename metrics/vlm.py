"""VLM-R: a vision-language model rates perceptual quality (and, given the LQ, fidelity), 0-100.

Any object implementing the `VLM` protocol (ggt_datasets.backends.base) works, e.g.
`ggt_datasets.backends.make_vlm("gemini")`. The prompt and the answer schema live with the
backends (ggt_datasets/backends/vlm_common.py: RATE_INSTRUCTION, RATE_WITH_LQ_INSTRUCTION,
RateAnswer) so QC and this metric ask the same question; the metric card quotes them.
Images are sent as lossless PNG. Scores are whatever the model answers, clipped to [0, 100].

Example:
    >>> from ggt_datasets.backends import make_vlm                   # doctest: +SKIP
    >>> ratings = vlm_r([restored_png], make_vlm("gemini"), lqs=[lq_png])  # doctest: +SKIP
    >>> ratings[0].quality, ratings[0].fidelity                       # doctest: +SKIP
    (82.0, 91.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ggt_datasets.backends.base import VLM, QualityRating
from ggt_datasets.backends.usage import Meter, metered
from ggt_datasets.images import encode_png
from ggt_datasets.metrics.inputs import to_uint8
from ggt_datasets.metrics.registry import MetricSpec

__all__ = ["VLMRMetric", "vlm_r"]


def _png(image: Any) -> bytes:
    if isinstance(image, bytes):
        return image
    try:
        import torch

        if torch.is_tensor(image):  # CHW float in [0, 1]
            arr = image.detach().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
            return encode_png(arr[..., :3] if arr.shape[2] >= 3 else arr[..., 0], compress_level=1)
    except ImportError:
        pass
    return encode_png(to_uint8(image), compress_level=1)


def _clip(v: float | None) -> float | None:
    return None if v is None else min(max(float(v), 0.0), 100.0)


def vlm_r(images: Sequence[Any], vlm: VLM, lqs: Sequence[Any] | None = None,
          usage: list[Meter] | None = None) -> list[QualityRating]:
    """Rate each image with `vlm`; with `lqs`, also its fidelity to the matching LQ.

    Images and LQs may be encoded bytes, paths, PIL images, uint8 arrays or CHW tensors. When
    `usage` is a list, one Meter per image (VLM requests and cost) is appended to it; the calls
    are also charged to any meter the caller has open (`backends.usage.metered`).
    """
    if not isinstance(vlm, VLM):  # ValueError: the CLI reports it as a user error
        raise ValueError(  # noqa: TRY004
            "vlm_r needs a VLM backend (an object with name, model, describe, write_prompt, "
            "judge and rate), e.g. ggt_datasets.backends.make_vlm('gemini')"
        )
    if lqs is not None and len(lqs) != len(images):
        raise ValueError(f"vlm_r: {len(images)} images but {len(lqs)} LQ images")
    out = []
    for i, image in enumerate(images):
        lq = _png(lqs[i]) if lqs is not None else None
        with metered() as meter:
            rating = vlm.rate(_png(image), lq=lq)
        if usage is not None:
            usage.append(meter)
        out.append(QualityRating(_clip(rating.quality), _clip(rating.fidelity), rating.rationale))
    return out


class VLMRMetric:
    """VLM-R behind the common signature: metric(pred, ref=None, lq=None) -> quality (N,).

    The reference is not shown to the VLM; pass `lq=` to also get fidelity in `last_ratings`.
    """

    def __init__(self, spec: MetricSpec, vlm: VLM | None = None, **_: Any):
        if vlm is None:
            raise ValueError(
                "vlm_r needs vlm=...: create_metric('vlm_r', vlm=make_vlm('gemini')) "
                "(ggt_datasets.backends.make_vlm)"
            )
        self.spec, self.vlm = spec, vlm
        self.last_ratings: list[QualityRating] = []
        self.last_usage: list[Meter] = []  # per image: VLM requests and cost

    def __call__(self, pred, ref=None, lq=None, **_: Any):
        import torch

        preds = list(pred) if torch.is_tensor(pred) and pred.dim() == 4 else [pred]
        lqs = list(lq) if lq is not None and torch.is_tensor(lq) and lq.dim() == 4 else lq
        if lqs is not None and not isinstance(lqs, list):
            lqs = [lqs]
        self.last_usage = []
        self.last_ratings = vlm_r(preds, self.vlm, lqs, usage=self.last_usage)
        return torch.tensor([r.quality for r in self.last_ratings], dtype=torch.float64)
