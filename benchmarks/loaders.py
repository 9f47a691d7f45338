"""Loader throughput: our PairedImageDataset on the built parquet format vs a BasicSR-style loader.

Makes N pairs of 1024 px PNGs from real photos (upscaled views + blur/noise degradation),
builds them with `ggt_datasets.build` (parquet holding the original PNG bytes), and times,
in the same run and with the same DataLoader settings (2 workers, batch 16, 256 px crops):

    basicsr   BasicSR's PairedImageDataset pipeline: cv2.imread both PNGs from disk, whole
              image to float32, paired random crop, hflip/rot augment, BGR->RGB CHW tensors
    cv2-lean  the same files, but cropped in uint8 before the float conversion
    ggt k=1   ggt_datasets.loaders on the built parquet, one crop per decoded pair
    ggt k=4   the same with crops_per_image=4

Rounds alternate the loaders; the best and the median round of each are reported (other
processes may share the CPUs). Peak RSS and USS are sampled from the worker processes.

    python benchmarks/loaders.py               # 64 pairs, 3 rounds: a few minutes on 2 cores
    python benchmarks/loaders.py --pairs 128 --rounds 5
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import datasets
import numpy as np
import psutil
import skimage.data
import torch
from torch.utils.data import DataLoader, Dataset

from ggt_datasets.atomic import atomic_write_bytes
from ggt_datasets.build import build_dataset
from ggt_datasets.images import encode_png
from ggt_datasets.loaders import PairedImageDataset, PairedTransformConfig, make_dataloader

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def make_raw(raw: Path, n: int, size: int, seed: int = 0) -> None:
    """RAW/train/mixed/{lq,hq}/{id}.png: 1024 px views of real photos and degraded copies."""
    rng = np.random.default_rng(seed)
    photos = [np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]) for name in PHOTOS]
    for side in ("lq", "hq"):
        (raw / "train" / "mixed" / side).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        img = photos[k % len(photos)]
        h, w = img.shape[:2]
        crop = int(min(h, w) * rng.uniform(0.6, 1.0))
        top, left = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
        hq = cv2.resize(img[top : top + crop, left : left + crop], (size, size), interpolation=cv2.INTER_CUBIC)
        if k % 2:
            hq = hq[:, ::-1]
        lq = cv2.GaussianBlur(hq, (0, 0), 1.5).astype(np.float32) + rng.normal(0, 8, hq.shape)
        lq = np.clip(lq, 0, 255).astype(np.uint8)
        atomic_write_bytes(raw / "train" / "mixed" / "hq" / f"pair{k:04d}.png", encode_png(np.ascontiguousarray(hq), 3))
        atomic_write_bytes(raw / "train" / "mixed" / "lq" / f"pair{k:04d}.png", encode_png(lq, 3))  # BasicSR's level


class BasicSRStyle(Dataset):
    """BasicSR's PairedImageDataset reduced to its work: read, (float,) crop, augment, to tensor."""

    def __init__(self, pairs: list[tuple[str, str]], crop: int, lean: bool):
        self.pairs, self.crop, self.lean = pairs, crop, lean

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        lq_path, hq_path = self.pairs[i]
        lq, hq = cv2.imread(lq_path, cv2.IMREAD_COLOR), cv2.imread(hq_path, cv2.IMREAD_COLOR)
        if not self.lean:  # BasicSR: imfrombytes(..., float32=True) converts the whole image
            lq, hq = lq.astype(np.float32) / 255.0, hq.astype(np.float32) / 255.0
        h, w = lq.shape[:2]
        top, left = random.randint(0, h - self.crop), random.randint(0, w - self.crop)
        lq = lq[top : top + self.crop, left : left + self.crop]
        hq = hq[top : top + self.crop, left : left + self.crop]
        hflip, vflip, rot = random.random() < 0.5, random.random() < 0.5, random.random() < 0.5
        out = []
        for img in (lq, hq):
            if hflip:
                img = img[:, ::-1]
            if vflip:
                img = img[::-1]
            if rot:
                img = img.transpose(1, 0, 2)
            img = np.ascontiguousarray(img[..., ::-1])  # BGR -> RGB
            t = torch.from_numpy(img).permute(2, 0, 1)
            out.append(t.float().div_(255.0) if self.lean else t.contiguous())
        return {"lq": out[0], "hq": out[1], "id": Path(hq_path).stem}


class RssSampler(threading.Thread):
    """Peak RSS and USS (memory unique to the process) of this process's children, the
    DataLoader workers. RSS also counts pages shared with the parent (forked memory, the
    memory-mapped arrow files); USS is what each worker adds."""

    def __init__(self):
        super().__init__(daemon=True)
        self.rss: dict[int, int] = {}
        self.uss: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.is_set():
            for child in me.children():
                try:
                    info = child.memory_full_info()
                except psutil.Error:
                    continue
                self.rss[child.pid] = max(self.rss.get(child.pid, 0), info.rss)
                self.uss[child.pid] = max(self.uss.get(child.pid, 0), info.uss)
            time.sleep(0.2)


def timed(loader: DataLoader, epochs: int) -> dict[str, float]:
    """Wall-clock samples/s after the first batch (worker start-up excluded); worker CPU seconds
    per 1000 samples over the whole run (less sensitive to other load on the machine); peak
    worker RSS and USS (MiB)."""
    began = time.time()
    mem = RssSampler()
    mem.start()
    samples, counted, start = 0, 0, None
    for epoch in range(epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        for batch in loader:
            samples += batch["lq"].shape[0]
            if start is None:
                start = time.perf_counter()
                continue
            counted += batch["lq"].shape[0]
    elapsed = time.perf_counter() - start
    mem.stop.set()
    mem.join()
    cpu = 0.0
    for child in psutil.Process().children():  # the workers are idle now (persistent, epoch done)
        try:
            if child.create_time() >= began - 1:
                times = child.cpu_times()
                cpu += times.user + times.system
        except psutil.Error:
            pass
    del loader
    return {
        "rate": counted / elapsed,
        "samples": samples,
        "cpu_per_1k": 1000 * cpu / samples,
        "rss": max(mem.rss.values(), default=0) / 2**20,
        "uss": max(mem.uss.values(), default=0) / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        raw, built = work / "raw", work / "built"
        t = time.perf_counter()
        if not (raw / "train").is_dir():
            make_raw(raw, args.pairs, args.size)
        if not (built / "README.md").is_file():
            build_dataset(raw, built, progress=False)
        print(
            f"data: {args.pairs} pairs of {args.size} px PNGs"
            f" ({sum(f.stat().st_size for f in raw.rglob('*.png')) / 2**20:.0f} MiB), "
            f"built parquet in {built}; setup {time.perf_counter() - t:.0f} s"
        )

        ds = datasets.load_dataset(str(built), "all", split="train")
        hq_dir = raw / "train" / "mixed"
        files = [(str(hq_dir / "lq" / f"{i}.png"), str(hq_dir / "hq" / f"{i}.png")) for i in sorted(ds["id"])]
        common = dict(num_workers=args.workers, persistent_workers=True, drop_last=True, pin_memory=False)

        def basicsr(lean: bool) -> DataLoader:
            return DataLoader(BasicSRStyle(files, args.crop, lean), batch_size=args.batch, shuffle=True, **common)

        def ggt(k: int) -> DataLoader:
            pairs = PairedImageDataset(ds, PairedTransformConfig(crop_size=args.crop), crops_per_image=k)
            return make_dataloader(pairs, batch_size=args.batch, num_workers=args.workers, pin_memory=False)

        loaders = {
            "basicsr": (lambda: basicsr(False), args.epochs),
            "cv2-lean": (lambda: basicsr(True), args.epochs),
            "ggt k=1": (lambda: ggt(1), args.epochs),
            "ggt k=4": (lambda: ggt(4), args.epochs),
        }
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in loaders}
        for r in range(args.rounds):
            for name, (make, epochs) in loaders.items():
                run = timed(make(), epochs)
                runs[name].append(run)
                print(
                    f"  round {r + 1} {name:9s} {run['rate']:7.1f} samples/s,"
                    f" {run['cpu_per_1k']:6.1f} worker CPU s per 1000 samples "
                    f"({run['samples']} samples)",
                    flush=True,
                )

        def stat(name: str, key: str, fn=np.median) -> float:
            return float(fn([run[key] for run in runs[name]]))

        print(
            f"\n{args.crop} px crops of {args.size} px PNG pairs, batch {args.batch},"
            f" {args.workers} workers, {args.rounds} rounds "
            "(median; best wall-clock in brackets):"
        )
        print(
            f"{'loader':10s} {'samples/s':>17s} {'vs basicsr':>15s}"
            f" {'CPU s/1k':>9s} {'vs basicsr':>11s} {'worker RSS':>11s} {'USS':>9s}"
        )
        for name in loaders:
            rate, best = stat(name, "rate"), stat(name, "rate", max)
            cpu = stat(name, "cpu_per_1k")
            print(
                f"{name:10s} {rate:7.1f} [{best:7.1f}]"
                f" {rate / stat('basicsr', 'rate'):6.2f}x [{best / stat('basicsr', 'rate', max):5.2f}x]"
                f" {cpu:9.1f}"
                f" {stat('basicsr', 'cpu_per_1k') / cpu:10.2f}x"
                f" {stat(name, 'rss', max):7.0f} MiB {stat(name, 'uss', max):5.0f} MiB"
            )
        print(
            "CPU s/1k: worker CPU seconds per 1000 samples; "
            "its ratio is basicsr's over this loader's (higher = cheaper)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
