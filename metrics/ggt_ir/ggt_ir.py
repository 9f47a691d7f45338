"""GGT-IR: image-restoration metrics (BasicSR-exact PSNR/SSIM, pyiqa perception, VLM-R).

An `evaluate` module over ggt_datasets.metrics. Load it from a clone with
evaluate.load("metrics/ggt_ir") or from an install with
evaluate.load(ggt_datasets.metrics.evaluate_module_path()).

Images are not stored as datasets.Image (encoding pixels into Arrow is slow): each input goes
into the module's cache as a small tagged binary value (a path, encoded file bytes, or raw RGB
pixels) and is decoded once, in _compute.
"""

import struct

import datasets
import evaluate
import numpy as np

from ggt_datasets.metrics.evaluation import evaluate_pairs
from ggt_datasets.metrics.inputs import to_uint8

_CITATION = """\
@article{kong2026GGT-100K,
  title={GGT-100K: Generative Ground Truth for Generalizable Real-World Image Restoration},
  author={Kong, Xiangtao and Zhao, Jixin and Sun, Lingchen and Wu, Rongyuan and Zhang, Lei},
  journal={arXiv preprint arXiv:2605.31039},
  year={2026}
}
"""

_DESCRIPTION = """\
Full-reference (PSNR, SSIM, LPIPS, DISTS, A-FINE) and no-reference (NIQE, MUSIQ, MANIQA,
CLIPIQA, TOPIQ-NR, A-FINE-NR, VLM-R) image-quality metrics for restoration. PSNR and SSIM give
BasicSR's numbers (BT.601 Y, crop_border, float64).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: restored images: file paths, encoded bytes, PIL images or uint8 arrays (H, W[, C]).
    references: ground truths in the same forms; may be omitted for no-reference metrics only.
    metrics: names, e.g. ["psnr", "ssim", "lpips"] (default ["psnr", "ssim"]).
    crop_border: pixels removed from each edge for PSNR/SSIM (default 0).
    test_y_channel: PSNR/SSIM on BT.601 Y (default True).
    per_image: also return each image's values under "per_image" (default False).
    device: torch device for learned metrics (default: cuda if available).
    weights_dir: folder of the learned metrics' weights (default: $GGT_WEIGHTS_DIR).
    vlm: a VLM backend object, for "vlm_r" (e.g. ggt_datasets.backends.make_vlm("gemini")).
Returns:
    {metric: mean over images, ...} (+ "per_image": {metric: [values]}).
Examples:
    >>> ggt_ir = evaluate.load("metrics/ggt_ir")
    >>> ggt_ir.compute(predictions=["out/1.png"], references=["hq/1.png"], metrics=["psnr"])
    {'psnr': 27.41}
"""

_PATH, _ENCODED, _RAW = b"P", b"E", b"R"


def _pack(image):
    """One input -> tagged bytes: a path, encoded file bytes, or raw uint8 RGB pixels."""
    if image is None:
        return None
    if isinstance(image, str) or hasattr(image, "__fspath__"):
        return _PATH + str(image).encode("utf-8")
    if isinstance(image, (bytes, bytearray)):
        return _ENCODED + bytes(image)
    arr = to_uint8(image)
    return _RAW + struct.pack("<II", arr.shape[0], arr.shape[1]) + arr.tobytes()


def _unpack(blob):
    if blob is None:
        return None
    tag, body = blob[:1], blob[1:]
    if tag == _PATH:
        return body.decode("utf-8")
    if tag == _ENCODED:
        return body
    h, w = struct.unpack("<II", body[:8])
    return np.frombuffer(body, dtype=np.uint8, offset=8).reshape(h, w, 3)


def _pack_all(images):
    return None if images is None else [_pack(x) for x in images]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GgtIr(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("binary"), "references": datasets.Value("binary")}
            ),
            reference_urls=["https://github.com/XPixelGroup/BasicSR", "https://github.com/chaofengc/IQA-PyTorch"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions (and references) to the module's cache."""
        preds = _pack_all(predictions)
        refs = _pack_all(references)
        if refs is None and preds is not None:
            refs = [None] * len(preds)  # no-reference metrics: an empty column
        return super().add_batch(predictions=preds, references=refs, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction (and reference) to the module's cache."""
        return super().add(prediction=_pack(prediction), reference=_pack(reference), **kwargs)

    def _compute(
        self,
        predictions,
        references,
        metrics=("psnr", "ssim"),
        crop_border=0,
        test_y_channel=True,
        per_image=False,
        device=None,
        weights_dir=None,
        vlm=None,
    ):
        preds = [_unpack(p) for p in predictions]
        refs = None
        if references is not None and any(r is not None for r in references):
            if any(r is None for r in references):
                raise ValueError("some predictions have references and some do not")
            refs = [_unpack(r) for r in references]
        result = evaluate_pairs(
            preds,
            refs,
            metrics,
            crop_border=crop_border,
            test_y_channel=test_y_channel,
            device=device,
            weights_dir=weights_dir,
            vlm=vlm,
        )
        out = dict(result.means)
        if per_image:
            out["per_image"] = {m: [row[m] for row in result.rows] for m in result.metrics}
        return out
