"""Default verification writes only rows that decode; HQ fitting; Hub-friendly parquet; the card."""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from ggt_datasets import build_shard, images, schema
from ggt_datasets.build import build_dataset
from ggt_datasets.build_shard import check_png_stream
from ggt_datasets.images import ImageError, encode_png
from tests.conftest import real_photo


def _png(arr: np.ndarray) -> bytes:
    return encode_png(np.ascontiguousarray(arr))


def _reheader(png: bytes, width: int, height: int) -> bytes:
    """The same PNG with IHDR declaring another size (CRC fixed: only the inflate check can tell)."""
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def _put(raw, item_id, lq: bytes, hq: bytes, ext=".png", category="rain", split="train"):
    for side, data in (("lq", lq), ("hq", hq)):
        d = raw / split / category / side
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{item_id}{ext}").write_bytes(data)


def test_default_verify_skips_rows_that_would_not_decode(tmp_path):
    raw, photo = tmp_path / "raw", real_photo("astronaut", 96)
    good = _png(photo)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG", quality=90)
    jpeg = buf.getvalue()
    half = len(jpeg) // 2
    noise = np.random.default_rng(0).integers(0, 256, len(jpeg) - half - 2, dtype=np.uint8).tobytes()
    corrupt_jpeg = jpeg[:half] + noise + jpeg[-2:]  # end-of-image marker intact
    assert corrupt_jpeg.endswith(b"\xff\xd9")
    _put(raw, "good", good, good)
    _put(raw, "jpegmid", corrupt_jpeg, jpeg, ext=".jpg")
    _put(raw, "huge", _reheader(good, 16000, 16000), good)
    _put(raw, "liar", _reheader(good, 3000, 3000), _reheader(good, 3000, 3000))
    report = build_dataset(raw, tmp_path / "out", progress=False)
    reasons = {s["id"]: s["reason"] for s in report.skipped}
    assert set(reasons) == {"jpegmid", "huge", "liar"}
    assert "cannot decode" in reasons["jpegmid"]
    assert "256000000 pixels" in reasons["huge"] and "GGT_MAX_PIXELS" in reasons["huge"]
    assert "3000x3000 header" in reasons["liar"]
    ds = datasets.load_dataset(str(tmp_path / "out"), "rain", split="train")
    assert ds["id"] == ["good"]
    # the old header-only mode let the corrupt JPEG and the lying PNG through: that is what --verify fast fixes
    header = build_dataset(raw, tmp_path / "header", verify="header", progress=False)
    assert {s["id"] for s in header.skipped} == {"huge"}


def test_png_stream_check_exact_cases():
    photo = real_photo("chelsea", 64)
    good = _png(photo)
    check_png_stream(good, "ok.png")
    interlaced = io.BytesIO()
    Image.fromarray(photo).save(interlaced, format="PNG", interlace=1)
    data = interlaced.getvalue()
    if data[28] == 1:  # Pillow wrote Adam7
        check_png_stream(data, "adam7.png")
    with pytest.raises(ImageError, match="longer than"):
        check_png_stream(_reheader(good, 64, 32), "short.png")
    raw_rows = b"".join(b"\x07" + bytes(64 * 3) for _ in range(64))  # filter type 7 does not exist
    idat = zlib.compress(raw_rows)
    chunk = b"IDAT" + idat
    bad = good[:33] + struct.pack(">I", len(idat)) + chunk + struct.pack(">I", zlib.crc32(chunk)) + good[-12:]
    with pytest.raises(ImageError, match="filter byte"):
        check_png_stream(bad, "filter.png")


def test_valid_pair_near_the_pixel_limit_builds_and_loads_with_plain_datasets(tmp_path):
    side = 8000  # HQ 64.0 M pixels: 95% of the default limit (8192^2), under Pillow's own 89.5 M; LQ at x2

    def ramp_png(n: int) -> bytes:
        ramp = np.linspace(0, 255, n, dtype=np.uint8)
        return encode_png(np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (n, n, 3))), compress_level=1)

    _put(tmp_path / "raw", "big", ramp_png(side // 2), ramp_png(side))
    report = build_dataset(tmp_path / "raw", tmp_path / "out", progress=False)
    assert report.pairs_written == 1 and not report.skipped
    row = datasets.load_dataset(str(tmp_path / "out"), "rain", split="train")[0]
    row["hq"].load()
    assert row["hq"].size == (side, side) and row["lq"].size == (side // 2, side // 2)


def test_fit_hq_resize_fits_and_reports_skip_is_default(tmp_path):
    raw, photo = tmp_path / "raw", real_photo("coffee", 140)
    lq = _png(photo[:64, :64])
    _put(raw, "near", lq, _png(np.ascontiguousarray(photo[:70, :70])))
    _put(raw, "double", lq, _png(np.ascontiguousarray(photo[:130, :130])))
    _put(raw, "tall", lq, _png(np.ascontiguousarray(photo[:96, :64])))
    _put(raw, "same", lq, lq)
    skip = build_dataset(raw, tmp_path / "skip", progress=False)
    assert {s["id"] for s in skip.skipped} == {"near", "double", "tall"}
    assert "--fit-hq resize" in skip.summary()
    fit = build_dataset(raw, tmp_path / "fit", fit_hq="resize", progress=False)
    assert {s["id"] for s in fit.skipped} == {"tall"}
    assert "aspect ratio" in fit.skipped[0]["reason"] and "refused" in fit.skipped[0]["reason"]
    assert sorted((f["id"], f["method"]) for f in fit.fitted) == [
        ("double", "resize 130x130 -> 128x128"),
        ("near", "resize 70x70 -> 64x64"),
    ]
    on_disk = json.loads((tmp_path / "fit" / "build_report.json").read_text())
    assert len(on_disk["fitted"]) == 2 and on_disk["fit_hq"] == "resize"
    rows = {r["id"]: r for r in datasets.load_dataset(str(tmp_path / "fit"), "rain", split="train")}
    assert rows["near"]["hq"].size == (64, 64) and rows["double"]["hq"].size == (128, 128)
    assert rows["near"][schema.HQ_FIT] == "resize 70x70 -> 64x64" and rows["same"][schema.HQ_FIT] is None


def test_parquet_row_groups_are_capped_and_page_index_written(sample_raw, tmp_path, monkeypatch):
    build_dataset(sample_raw, tmp_path / "out", progress=False)
    shard = tmp_path / "out" / "data" / "rain" / "train-00000-of-00001.parquet"
    md = pq.ParquetFile(shard).metadata
    assert md.num_rows == 2 and md.num_row_groups == 1
    names = [md.schema.column(j).path for j in range(md.num_columns)]
    assert "lq.bytes" in names and "lq.path" in names  # Image columns as struct{bytes, path}
    for i in range(md.num_row_groups):
        assert md.row_group(i).total_byte_size < build_shard.ROW_GROUP_BYTES < 300 * 2**20
        for j in range(md.num_columns):
            assert md.row_group(i).column(j).has_offset_index
        assert md.row_group(i).column(names.index("id")).has_column_index
    monkeypatch.setattr(build_shard, "ROW_GROUP_BYTES", 1)  # one pair per row group
    build_dataset(sample_raw, tmp_path / "small", num_proc=1, progress=False)
    md = pq.ParquetFile(tmp_path / "small" / "data" / "rain" / "train-00000-of-00001.parquet").metadata
    assert md.num_row_groups == 2 and [md.row_group(i).num_rows for i in range(2)] == [1, 1]
    ds = datasets.load_dataset(str(tmp_path / "small"), "rain", split="train", streaming=True)
    assert len(list(ds)) == 2


def test_id_shared_by_two_categories_of_one_split_is_skipped(sample_raw, tmp_path):
    rain = next((sample_raw / "train" / "rain" / "lq").iterdir())
    for side in ("lq", "hq"):
        src = next((sample_raw / "train" / "rain" / side).glob(f"{rain.stem}.*"))
        shutil.copy(src, sample_raw / "train" / "haze" / side / src.name)
    report = build_dataset(sample_raw, tmp_path / "out", progress=False)
    dup = [s for s in report.skipped if s["id"] == rain.stem]
    assert len(dup) == 1 and "unique in a split" in dup[0]["reason"] and dup[0]["category"] == "rain"
    haze = datasets.load_dataset(str(tmp_path / "out"), "haze", split="train")
    assert rain.stem in haze["id"] and haze.num_rows == 3  # the first of the two (haze sorts first) is kept
    assert report.pairs_written == 18


def test_card_says_what_the_data_is_and_licence_reaches_info(built_sample):
    text = (built_sample / "README.md").read_text()
    assert "https://github.com/" not in text
    assert "synthetically degraded copy" in text and "the original photograph" in text
    assert "generative ground truth" not in text.split("## Fields")[1].split("## License")[0]
    meta = yaml.safe_load(text.split("---")[1])
    assert all(info["license"] == schema.LICENSE for info in meta["dataset_info"])
    for config in ("all", "rain"):
        ds = datasets.load_dataset(str(built_sample), config, split="train")
        assert ds.info.license == schema.LICENSE


def _with_idat(png: bytes, idat: bytes) -> bytes:
    """The PNG with its (single) IDAT replaced by `idat`, CRC fixed: only the inflate check can tell."""
    chunk = b"IDAT" + idat
    return png[:33] + struct.pack(">I", len(idat)) + chunk + struct.pack(">I", zlib.crc32(chunk)) + png[-12:]


@pytest.mark.parametrize("inflater", ["zlib", "isal"])
def test_png_stream_check_holds_under_either_inflater(inflater, monkeypatch):
    """isal (the fast default) and zlib (the fallback) accept and refuse exactly the same streams."""
    import importlib

    lib = zlib if inflater == "zlib" else importlib.import_module("isal.isal_zlib")
    monkeypatch.setattr(images, "fast_zlib", lib)
    good = _png(real_photo("coffee", 64))
    images.check_png_chunks(good, "ok.png")
    with pytest.raises(ImageError, match="'IDAT' fails its CRC check"):
        images.check_png_chunks(good[:60] + bytes([good[60] ^ 1]) + good[61:], "crc.png")
    length = struct.unpack(">I", good[33:37])[0]
    assert good[37:41] == b"IDAT" and good[49 + length : 53 + length] == b"IEND"  # one IDAT, as _with_idat needs
    check_png_stream(good, "ok.png")
    idat = good[41 : 41 + length]
    flipped = bytearray(idat)
    flipped[len(idat) // 2] ^= 0xFF
    cases = {
        "truncated": (_with_idat(good, idat[: len(idat) // 2]), "truncated or corrupt"),
        "corrupt": (_with_idat(good, bytes(flipped)), r"does not inflate|header|truncated or corrupt|filter byte"),
        "not deflate": (_with_idat(good, b"\x00" * 40), "does not inflate"),
        "too long": (_reheader(good, 64, 32), "longer than"),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(ImageError, match=message):
            check_png_stream(data, f"{name}.png")


def test_the_fast_inflater_is_used_where_installed():
    import importlib.util

    expected = "isal" if importlib.util.find_spec("isal") else "zlib"
    assert build_shard.INFLATER == expected
