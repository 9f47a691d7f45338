"""Synthesis engine throughput against the fake API (0.5 s latency, 512 px images).

Prints, for concurrency 8, 32 and 128: achieved items/s over the ideal (concurrency / latency),
the client's CPU ms per item, and the speed-up over a plain sequential loop over the SDK (the
baseline a user would write, measured in the same run). Then how closely an --rpm limit is held
against a server enforcing the same limit (sliding 60 s window), with its 429 count.

The fake server runs in a separate process for the throughput part (so the CPU measured is the
client's alone) and answers each image with itself (`--mode echo`: no server-side image work).
Ledger, cache and artefact writes, decoding and the geometry check all happen as in a real run.

    python benchmarks/synth.py                   # a few minutes on 2 cores
    python benchmarks/synth.py --rpm-seconds 90  # a limit test longer than the server's window
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from ggt_datasets.atomic import atomic_open, atomic_write_bytes
from ggt_datasets.backends import make_generator
from ggt_datasets.images import encode_png
from ggt_datasets.synth.config import SynthConfig
from ggt_datasets.synth.inputs import register_inputs
from ggt_datasets.synth.ledger import Ledger
from ggt_datasets.synth.prompts import fixed_prompt, load_templates
from ggt_datasets.synth.runner import run_synthesis
from ggt_datasets.testing.fake_api import FakeAPIServer

KEY = "bench-key-not-secret-0000"
LATENCY = 0.5


def make_inputs(folder: Path, n: int, size: int = 512, fmt: str = "jpeg") -> Path:
    """n distinct 512 px photos (a real photo with a different small noise field each)."""
    base = skimage.data.astronaut()[:size, :size].astype(np.int16)
    rng = np.random.default_rng(0)
    (folder / "rain").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        noisy = np.clip(base + rng.integers(-6, 7, base.shape), 0, 255).astype(np.uint8)
        if fmt == "png":
            atomic_write_bytes(folder / "rain" / f"b{i:04d}.png", encode_png(noisy, compress_level=1))
        else:
            with atomic_open(folder / "rain" / f"b{i:04d}.jpg") as f:
                Image.fromarray(noisy).save(f, format="JPEG", quality=90)
    return folder


def start_server(*flags: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "ggt_datasets.testing.fake_api", "--latency", str(LATENCY), *flags],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def engine_run(lq: Path, run: Path, url: str, concurrency: int, rpm: float | None = None, limit: int | None = None):
    gen = make_generator("gemini", base_url=url, api_key=KEY, timeout=60.0)
    with Ledger(run) as ledger:
        register_inputs(ledger, lq)
        cpu0 = time.process_time()
        summary = run_synthesis(ledger, gen, SynthConfig(concurrency=concurrency, rpm=rpm, limit=limit,
                                                         progress=False, backoff_base=0.5))
        cpu = time.process_time() - cpu0
    return summary, cpu


def sequential_baseline(lq: Path, out: Path, url: str, n: int) -> float:
    """What a user would write: for each photo, call the SDK and save the answer. Items/s."""
    gen = make_generator("gemini", base_url=url, api_key=KEY, timeout=60.0)
    prompt = fixed_prompt("rain", load_templates())
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted((lq / "rain").iterdir())[:n]
    t0 = time.monotonic()
    for path in paths:
        result = gen.restore(path.read_bytes(), prompt, {"category": "rain"})
        atomic_write_bytes(out / path.name, result.image)
    return len(paths) / (time.monotonic() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--rounds", type=int, default=8, help="items per request slot at each concurrency")
    parser.add_argument("--rpm", type=float, default=240.0)
    parser.add_argument("--rpm-seconds", type=float, default=30.0, help="length of the rpm test")
    parser.add_argument("--baseline-items", type=int, default=8)
    parser.add_argument("--format", choices=("jpeg", "png"), default="jpeg",
                        help="input encoding (jpeg ~80 KB, png ~560 KB per image; png: SDK and server cost more)")
    parser.add_argument("--mode", choices=("echo", "resize"), default="echo",
                        help="fake answers: echo (same geometry: HQ kept as is) or resize (1K bucket: HQ resized "
                             "and written as PNG, as with real Gemini outputs)")
    args = parser.parse_args()
    os.environ.pop("GEMINI_API_KEY", None)

    with tempfile.TemporaryDirectory(prefix="ggt-bench-synth-") as tmp:
        tmp = Path(tmp)
        need = max(max(args.concurrency) * args.rounds, int(args.rpm * args.rpm_seconds / 60) + 1)
        t0 = time.monotonic()
        lq = make_inputs(tmp / "lq", need, fmt=args.format)
        print(f"{need} distinct 512 px {args.format.upper()} inputs made in {time.monotonic() - t0:.1f} s; "
              f"server latency {LATENCY} s, answers: {args.mode}")

        proc, url = start_server("--mode", args.mode)
        try:
            baseline = sequential_baseline(lq, tmp / "seq", url, args.baseline_items)
            print(f"\nsequential SDK loop (baseline): {baseline:.2f} items/s "
                  f"(ideal {1 / LATENCY:.2f}); ratio {baseline * LATENCY:.2f}")
            print(f"\n{'concurrency':>11} {'items':>6} {'items/s':>8} {'ideal':>7} {'ratio':>6} "
                  f"{'CPU ms/item':>11} {'vs sequential':>13}")
            for c in args.concurrency:
                n = c * args.rounds
                summary, cpu = engine_run(lq, tmp / f"run-c{c}", url, c, limit=n)
                rate = summary.done / summary.seconds
                ideal = c / LATENCY
                print(f"{c:>11} {summary.done:>6} {rate:>8.1f} {ideal:>7.1f} {rate / ideal:>6.2f} "
                      f"{1000 * cpu / max(summary.done, 1):>11.1f} {rate / baseline:>12.1f}x"
                      + ("" if summary.done == n else f"  ({n - summary.done} not done!)"))
        finally:
            proc.terminate()
            proc.wait(timeout=10)

        # The rpm limit, against an in-process server enforcing the same limit (stats readable).
        n = int(args.rpm * args.rpm_seconds / 60)
        with FakeAPIServer(latency=LATENCY, mode="echo", rpm_limit=int(args.rpm)) as server:
            summary, _ = engine_run(lq, tmp / "run-rpm", server.base_url, 32, rpm=args.rpm, limit=n)
            stats = server.stats
        # Starts are evenly spaced; the last answer arrives one latency after the last start.
        achieved = 60.0 * (summary.requests - 1) / (summary.seconds - LATENCY)
        print(f"\n--rpm {args.rpm:g} for {summary.seconds:.1f} s ({summary.requests} requests, concurrency 32): "
              f"achieved {achieved:.1f} requests/min = {achieved / args.rpm:.3f} of the limit; "
              f"429s from the server: {stats['rate_limited']}")
        if args.rpm_seconds < 60:
            print("  (the server counts a sliding 60 s window: run --rpm-seconds 90 to test past one window)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
