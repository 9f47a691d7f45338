"""Benchmark `ggt build` against datasets' imagefolder + parquet and against plain copying.

Generates a raw layout of 1024 px PNG pairs from real photos (a few unique pairs, copied under
new ids to reach the size asked for), then times, each in a fresh process:

  ours      build_dataset(RAW, OUT)                                  (fast verify, all cores)
  datasets  load_dataset("imagefolder", data_dir=RAW) + embed bytes + to_parquet
  copy      shutil.copyfile of every image file (the floor: moving the bytes once)

and prints pairs/s, MB/s, the ratios, and the peak RSS of our build (main process and workers
together, sampled) at two
input sizes, to show memory does not grow with the input.

    python benchmarks/build.py --gb 2 --workdir /tmp/ggt-bench-build
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, shutil, sys, time
from pathlib import Path
kind, raw, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
shutil.rmtree(out, ignore_errors=True)
t = time.perf_counter()
if kind == "ours":
    from ggt_datasets.build import build_dataset
    build_dataset(raw, out, progress=False)
elif kind == "datasets":
    import datasets
    from datasets.table import embed_table_storage
    datasets.disable_progress_bars()
    ds = datasets.load_dataset("imagefolder", data_dir=str(raw), split="train", cache_dir=str(out / "cache"))
    ds = ds.with_format("arrow").map(embed_table_storage, batched=True, batch_size=64).with_format(None)
    ds.to_parquet(str(out / "data.parquet"))
elif kind == "copy":
    out.mkdir(parents=True)
    for i, p in enumerate(sorted(raw.rglob("*.png"))):
        shutil.copyfile(p, out / f"{i}.png")
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def make_raw(raw: Path, gigabytes: float, size: int = 1024, unique: int = 12) -> tuple[int, int]:
    """Write pairs of `size` px PNGs until about `gigabytes` GB; returns (pairs, bytes)."""
    import cv2
    import numpy as np

    from ggt_datasets.degrade import degrade
    from ggt_datasets.images import encode_png
    from ggt_datasets.sample import available_photos

    rng = np.random.default_rng(0)
    photos = list(available_photos().values())
    cats = ["mixed", "rain", "haze", "snow", "low_light", "old_photo"]
    originals = []
    for i in range(unique):
        hq = cv2.resize(photos[i % len(photos)], (size, size), interpolation=cv2.INTER_CUBIC)
        lq = degrade(hq, cats[i % 6], rng)
        originals.append((cats[i % 6], encode_png(lq, 1), encode_png(hq, 1)))
    pairs = total = 0
    while total < gigabytes * 1e9:
        cat, lq, hq = originals[pairs % unique]
        for side, data in (("lq", lq), ("hq", hq)):
            folder = raw / "train" / cat / side
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"p{pairs:06d}.png").write_bytes(data)
            total += len(data)
        pairs += 1
    return pairs, total


def run(kind: str, raw: Path, out: Path) -> dict:
    """Run one contender in a fresh process; peak RSS is the sum over it and its workers, sampled."""
    import psutil

    subprocess.run(["sync"], check=False)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, kind, str(raw), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{kind} failed:\n{stderr[-3000:]}")
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_mb": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0, help="raw data size in GB (default 2)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ggt-bench-build"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    small, large = args.workdir / "raw-small", args.workdir / "raw"
    n_small, b_small = make_raw(small, args.gb / 4)
    n, nbytes = make_raw(large, args.gb)
    print(f"raw: {n} pairs of 1024 px PNG, {nbytes / 1e9:.2f} GB ({n_small} pairs, {b_small / 1e9:.2f} GB for the RSS check)")
    results = {}
    for kind in ("ours", "copy", "datasets", "ours"):  # ours twice: the second run has a warm page cache like the others
        results[kind] = run(kind, large, args.workdir / f"out-{kind}")
    small_rss = run("ours", small, args.workdir / "out-small")["peak_rss_mb"]
    ours, copy, ds = results["ours"], results["copy"], results["datasets"]
    mb = nbytes / 1e6
    print(f"{'':10} {'seconds':>8} {'pairs/s':>8} {'MB/s':>8} {'peak RSS MB':>12}")
    for name, r in (("ggt build", ours), ("datasets", ds), ("copy", copy)):
        print(f"{name:10} {r['seconds']:8.2f} {n / r['seconds']:8.1f} {mb / r['seconds']:8.1f} {r['peak_rss_mb']:12.0f}")
    print(f"speed-up over datasets imagefolder + parquet: {ds['seconds'] / ours['seconds']:.2f}x (target >= 3x)")
    print(f"time over plain copy: {ours['seconds'] / copy['seconds']:.2f}x (target <= 2x)")
    print(f"peak RSS of ggt build: {ours['peak_rss_mb']:.0f} MB at {nbytes / 1e9:.2f} GB, "
          f"{small_rss:.0f} MB at {b_small / 1e9:.2f} GB (target < 1024 MB, flat)")


if __name__ == "__main__":
    main()
