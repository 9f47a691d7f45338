"""Loaders decode through ggt_datasets.images: a hostile header in a parquet row is refused by id."""

from __future__ import annotations

import gc
import re
import struct
import zlib
from pathlib import Path

import datasets
import pytest

from ggt_datasets import schema
from ggt_datasets.images import ImageError
from ggt_datasets.loaders import IterablePairedDataset, PairedImageDataset, PairedTransformConfig
from ggt_datasets.testing.hostile import jpeg_declaring, png_declaring


@pytest.fixture
def hostile_parquet(tmp_path, pair_factory) -> str:
    """A parquet file as a build writes it, with row p002's HQ declaring 20000x20000 and p004's LQ a lying JPEG."""
    rows = pair_factory(6, 24).to_dict()
    rows["hq"][2] = {"bytes": png_declaring(20000, 20000), "path": None}
    rows["lq"][4] = {"bytes": jpeg_declaring(16000, 16000), "path": None}
    path = tmp_path / "train-00000-of-00001.parquet"
    datasets.Dataset.from_dict(rows, features=schema.FEATURES).to_parquet(str(path))
    return str(path)


def test_map_style_names_the_row_and_the_limit(hostile_parquet):
    ds = PairedImageDataset(
        datasets.load_dataset("parquet", data_files=hostile_parquet, split="train"), PairedTransformConfig(crop_size=16)
    )
    assert ds[1]["hq"].shape == (3, 16, 16)  # the good rows load
    with pytest.raises(ImageError, match=r"p002 hq: .*(20000x20000|400,?000,?000).*limit"):
        ds[2]
    with pytest.raises(ImageError, match=r"p004 lq: .*256,000,000 pixels|p004 lq: .*the limit is 67,108,864"):
        ds[4]


def test_streaming_names_the_row(hostile_parquet):
    stream = datasets.load_dataset("parquet", data_files=hostile_parquet, split="train", streaming=True)
    it = iter(IterablePairedDataset(stream, PairedTransformConfig(crop_size=16), rank=0, world_size=1))
    assert [next(it)["id"] for _ in range(2)] == ["p000", "p001"]
    with pytest.raises(ImageError, match="p002 hq: .*limit"):
        next(it)


def _png_of_zeros(w: int, h: int) -> bytes:
    """A real, decodable w x h RGB PNG (all black) built chunk by chunk: small on disk, w*h*3 decoded."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z = zlib.compressobj(1)
    idat = b"".join(z.compress(bytes(1 + 3 * w)) for _ in range(h)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _status_mb(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) // 1024


def _peak_growth_mb(ds: PairedImageDataset, limit: int, monkeypatch) -> tuple[str, int]:
    """Try row 0 under `limit`: (outcome, how far the peak RSS rose above the RSS before, in MB).

    The peak (VmHWM) is reset first through /proc/self/clear_refs, so this measures in-process,
    whatever earlier tests used (a forked child could deadlock on their threads' locks)."""
    monkeypatch.setenv("GGT_MAX_PIXELS", str(limit))
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mb("VmRSS")
    try:
        ds[0]
        outcome = "decoded"
    except ImageError as err:
        outcome = "refused naming the row" if "big hq" in str(err) else f"refused: {err}"
    return outcome, _status_mb("VmHWM") - before


def test_memory_of_a_hostile_row_is_bounded(tmp_path, pair_factory, monkeypatch):
    """A real 4096x4096 PNG (48 MB as RGB) in a row, one pixel over the limit: refused before decoding,
    the peak memory unchanged. At the limit it decodes, and the measurement shows it."""
    rows = pair_factory(1, 8).to_dict()
    rows["id"], rows["hq"] = ["big"], [{"bytes": _png_of_zeros(4096, 4096), "path": None}]
    path = tmp_path / "big.parquet"
    datasets.Dataset.from_dict(rows, features=schema.FEATURES).to_parquet(str(path))
    ds = PairedImageDataset(datasets.load_dataset("parquet", data_files=str(path), split="train"))
    results = [_peak_growth_mb(ds, limit, monkeypatch) for limit in (4096 * 4096 - 1, 4096 * 4096)]
    (refused, grown), (decoded, decode_grown) = results
    assert refused == "refused naming the row" and grown < 20, f"peak memory grew {grown} MB refusing the row"
    assert decoded == "decoded" and decode_grown >= 48, results  # a decode does show in the measurement
