"""Metrics speed, against baselines measured in the same run (CPU).

    python benchmarks/metrics.py [--pairs 4] [--size 1024] [--repeat 5] [--eval-pairs 100] [--eval-size 512]

1. SSIM on Y of 1024 px pairs: ours (torch, float64) vs BasicSR's numpy + cv2 code
   (re-derived here from its formulas) and vs pyiqa's SSIM (test_y_channel, ycbcr).
   Targets, with the same values: ours / BasicSR <= 0.45 on uint8 tensors and <= 0.5 on float32
   [0, 1] tensors (the path finetune validation and `ggt eval --model` use); pyiqa / ours >= 10.
2. The `evaluate` module (metrics/ggt_ir) vs calling our functions directly for 100 pairs
   (PSNR + SSIM on Y, inputs as file paths and as PIL images). Target: <= 1.5x.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from PIL import Image

from ggt_datasets.atomic import atomic_write_bytes
from ggt_datasets.images import encode_png
from ggt_datasets.metrics import evaluate_module_path, psnr, ssim, to_tensor

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def pairs(n: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(LQ, HQ) uint8 RGB pairs: real photos resized to size, with noise + blur + JPEG."""
    out = []
    rng = np.random.default_rng(0)
    for i in range(n):
        hq = cv2.resize(getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()[..., :3], (size, size),
                        interpolation=cv2.INTER_AREA)
        lq = cv2.GaussianBlur(hq, (5, 5), 1.0).astype(np.float64) + rng.normal(0, 8, hq.shape)
        lq = np.clip(lq, 0, 255).round().astype(np.uint8)
        _, buf = cv2.imencode(".jpg", lq, [cv2.IMWRITE_JPEG_QUALITY, 40])
        out.append((cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), hq))
    return out


def basicsr_ssim_y(a: np.ndarray, b: np.ndarray) -> float:
    """BasicSR's calculate_ssim(test_y_channel=True) on RGB uint8, as its numpy + cv2 code does."""

    def y(img):
        x = img.astype(np.float32) / 255.0
        return ((np.dot(x, [65.481, 128.553, 24.966]) + 16.0) / 255.0).astype(np.float32) * 255.0

    a, b = y(a).astype(np.float64), y(b).astype(np.float64)
    k = cv2.getGaussianKernel(11, 1.5)
    w = np.outer(k, k.transpose())
    mu1, mu2 = cv2.filter2D(a, -1, w)[5:-5, 5:-5], cv2.filter2D(b, -1, w)[5:-5, 5:-5]
    s1 = cv2.filter2D(a**2, -1, w)[5:-5, 5:-5] - mu1**2
    s2 = cv2.filter2D(b**2, -1, w)[5:-5, 5:-5] - mu2**2
    s12 = cv2.filter2D(a * b, -1, w)[5:-5, 5:-5] - mu1 * mu2
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float((((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))).mean())


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def bench_ssim(n: int, size: int, repeat: int = 5) -> None:
    data = pairs(n, size)
    # The tensors exist before timing, as in finetune validation and `ggt eval --model` (the
    # baseline likewise gets its uint8 arrays ready-made); float32 [0, 1] tensors are quantised.
    as_u8 = [(to_tensor(lq, uint8=True), to_tensor(hq, uint8=True)) for lq, hq in data]
    as_float = [(to_tensor(lq), to_tensor(hq)) for lq, hq in data]
    t_ref, ref = best_of(lambda: [basicsr_ssim_y(lq, hq) for lq, hq in data], repeat)
    t_ours, ours = best_of(lambda: [float(ssim(a, b, test_y_channel=True)) for a, b in as_u8], repeat)
    t_float, ours_f = best_of(lambda: [float(ssim(a, b, test_y_channel=True)) for a, b in as_float], repeat)
    diff = max(abs(a - b) for a, b in zip(ours + ours_f, ref + ref, strict=True))
    print(f"SSIM-Y, {n} pairs of {size}px, CPU, {torch.get_num_threads()} torch threads, "
          f"{cv2.getNumThreads()} cv2 threads")
    print(f"  BasicSR numpy+cv2 : {t_ref / n * 1000:8.1f} ms/pair (uint8 arrays in)")
    print(f"  ours, uint8 in    : {t_ours / n * 1000:8.1f} ms/pair   max |ours - BasicSR| = {diff:.2e}")
    print(f"  ours, float in    : {t_float / n * 1000:8.1f} ms/pair   (float32 [0, 1] tensors, quantised)")
    print(f"  ours / BasicSR    : {t_ours / t_ref:8.3f} uint8 tensors  (target <= 0.45)")
    print(f"  ours / BasicSR    : {t_float / t_ref:8.3f} float tensors  (target <= 0.5)")
    try:
        import pyiqa
    except ImportError:
        print("  pyiqa not installed: skipped")
        return
    metric = pyiqa.create_metric("ssim", test_y_channel=True, color_space="ycbcr", device="cpu")
    t_pyiqa, vals = best_of(lambda: [float(metric(to_tensor(lq), to_tensor(hq))) for lq, hq in data], repeat=1)
    pdiff = max(abs(a - b) for a, b in zip(vals, ref, strict=True))
    print(f"  pyiqa ssim (ycbcr): {t_pyiqa / n * 1000:8.1f} ms/pair   max |pyiqa - BasicSR| = {pdiff:.2e}")
    print(f"  pyiqa / ours      : {t_pyiqa / t_ours:8.1f}x  (target >= 10)")


def bench_evaluate(n: int, size: int) -> None:
    import evaluate

    data = pairs(n, size)
    with tempfile.TemporaryDirectory() as tmp:
        preds, refs = [], []
        for i, (lq, hq) in enumerate(data):
            p, r = Path(tmp) / f"p{i}.png", Path(tmp) / f"r{i}.png"
            atomic_write_bytes(p, encode_png(lq, compress_level=1))
            atomic_write_bytes(r, encode_png(hq, compress_level=1))
            preds.append(str(p))
            refs.append(str(r))
        module = evaluate.load(evaluate_module_path())

        def direct(ps, rs):
            vals = {"psnr": [], "ssim": []}
            for p, r in zip(ps, rs, strict=True):
                a, b = to_tensor(p, uint8=True), to_tensor(r, uint8=True)
                vals["psnr"].append(float(psnr(a, b, test_y_channel=True)))
                vals["ssim"].append(float(ssim(a, b, test_y_channel=True)))
            return {k: float(np.mean(v)) for k, v in vals.items()}

        def via_module(ps, rs):
            return module.compute(predictions=ps, references=rs, metrics=["psnr", "ssim"], test_y_channel=True)

        pil_p = [Image.open(p) for p in preds]
        pil_r = [Image.open(r) for r in refs]
        for im in pil_p + pil_r:
            im.load()
        print(f"evaluate module vs direct calls, {n} pairs of {size}px, PSNR + SSIM on Y")
        for label, ps, rs in (("file paths", preds, refs), ("PIL images", pil_p, pil_r)):
            t_direct, a = best_of(lambda ps=ps, rs=rs: direct(ps, rs), repeat=3)
            t_module, b = best_of(lambda ps=ps, rs=rs: via_module(ps, rs), repeat=3)
            same = abs(a["psnr"] - b["psnr"]) < 1e-9 and abs(a["ssim"] - b["ssim"]) < 1e-9
            print(f"  {label:10s}: direct {t_direct:6.2f} s, module {t_module:6.2f} s, "
                  f"ratio {t_module / t_direct:.2f}x (target <= 1.5), same values: {same}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--eval-pairs", type=int, default=100)
    parser.add_argument("--eval-size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5, help="best of this many timings (a busy machine needs more)")
    parser.add_argument("--threads", type=int, default=0, help="torch/cv2 threads (default: all cores)")
    parser.add_argument("--skip-evaluate", action="store_true", help="only the SSIM part")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    cv2.setNumThreads(args.threads or os.cpu_count() or 1)
    bench_ssim(args.pairs, args.size, args.repeat)
    if not args.skip_evaluate:
        bench_evaluate(args.eval_pairs, args.eval_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
