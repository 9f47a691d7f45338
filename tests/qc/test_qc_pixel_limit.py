"""QC refuses an image over the shared pixel limit before decoding it: a per-item reason, bounded memory."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import numpy as np
import psutil

from ggt_datasets.images import encode_png
from ggt_datasets.qc.config import load_config
from ggt_datasets.qc.pipeline import run_qc


def huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header declares width x height (RGB, 8 bit) over a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def test_a_png_declaring_20000x20000_is_refused_per_item_with_bounded_memory(tmp_path, photo):
    small = photo[:128, :128]
    for side in ("lq", "hq"):
        (tmp_path / "train/mixed" / side).mkdir(parents=True)
        (tmp_path / "train/mixed" / side / "good.png").write_bytes(encode_png(small))
    (tmp_path / "train/mixed/lq/huge.png").write_bytes(encode_png(small))
    (tmp_path / "train/mixed/hq/huge.png").write_bytes(huge_png())
    assert (tmp_path / "train/mixed/hq/huge.png").stat().st_size < 2000
    config = load_config()
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    tracemalloc.start()
    results, _ = run_qc(tmp_path, ("metric",), config, progress=False, workers=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    growth = proc.memory_info().rss - rss0
    by_id = {r["id"]: r for r in results}
    huge = by_id["huge"]
    assert huge["decision"] == "reject" and len(huge["reasons"]) == 1
    reason = huge["reasons"][0]
    assert reason.startswith("unreadable: ") and "huge.png" in reason
    assert "67,108,864 pixels" in reason and "GGT_MAX_PIXELS" in reason  # the limit, and how to change it
    assert by_id["good"]["scores"]  # the other pair is checked as usual
    assert peak < 500 * 2**20 and growth < 500 * 2**20, (peak, growth)  # a decode would need 1.2 GB
    assert np.isfinite(by_id["good"]["scores"]["structure_ssim"])
