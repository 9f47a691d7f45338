"""Broken and odd inputs: each gets its documented outcome, in default and --strict mode."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import datasets
import numpy as np
import pytest
from PIL import Image

from ggt_datasets.build import build_dataset
from ggt_datasets.cli import main
from ggt_datasets.images import encode_png


def _png(arr: np.ndarray) -> bytes:
    return encode_png(np.ascontiguousarray(arr))


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92, **kw)
    return buf.getvalue()


def _put(raw, item_id, lq: bytes | None, hq: bytes | None, ext=".png", category="rain"):
    for side, data in (("lq", lq), ("hq", hq)):
        if data is None:
            continue
        d = raw / "train" / category / side
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{item_id}{ext if side == 'lq' else ext}").write_bytes(data)


@pytest.fixture
def broken_raw(tmp_path, photo):
    """One good pair plus one pair per kind of bad or odd input. Returns (raw, expected outcomes)."""
    raw = tmp_path / "raw"
    small = photo[:64, :96]
    good = _png(small)
    _put(raw, "good", good, good)
    _put(raw, "truncated", good, good[: len(good) // 2])
    _put(raw, "notimage", b"this is not an image, just text\n" * 10, good)
    _put(raw, "missinghq", good, None)
    _put(raw, "mismatch", good, _png(photo[:60, :96]))
    _put(raw, "zerobyte", b"", good)
    _put(raw, "unsafe", good, good)
    cmyk = _jpeg(Image.fromarray(small).convert("CMYK"))
    _put(raw, "cmyk", cmyk, cmyk, ext=".jpg")
    sixteen = Image.fromarray((small[..., 0].astype(np.uint16) * 257)).convert("I;16")
    buf = io.BytesIO()
    sixteen.save(buf, format="PNG")
    _put(raw, "sixteen", buf.getvalue(), buf.getvalue())
    # EXIF orientation 6 (turn 90 degrees clockwise to display): a stored 96x64 JPEG shows as 64x96
    exif = Image.Exif()
    exif[0x0112] = 6
    _put(raw, "exifrot", _jpeg(Image.fromarray(small), exif=exif.tobytes()), None, ext=".jpg")
    (raw / "train" / "rain" / "hq" / "exifrot.png").write_bytes(_png(np.rot90(small, -1)))
    meta = [{"id": "unsafe", "source": "../../etc/passwd"}, {"id": "good", "source": "sample:test"}]
    (raw / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    skipped = {"truncated", "notimage", "missinghq", "mismatch", "zerobyte", "unsafe"}
    kept = {"good", "cmyk", "sixteen", "exifrot"}
    return raw, skipped, kept


def test_default_mode_skips_bad_pairs_and_reports_them(broken_raw, tmp_path):
    raw, skipped, kept = broken_raw
    report = build_dataset(raw, tmp_path / "out", progress=False)
    assert {s["id"] for s in report.skipped} == skipped
    reasons = {s["id"]: s["reason"] for s in report.skipped}
    assert "truncated" in reasons["truncated"]
    assert "not an image" in reasons["notimage"]
    assert "missing HQ" in reasons["missinghq"]
    assert "neither the LQ size" in reasons["mismatch"]
    assert "empty" in reasons["zerobyte"]
    assert "outside RAW" in reasons["unsafe"]
    on_disk = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert {s["id"] for s in on_disk["skipped"]} == skipped
    ds = datasets.load_dataset(str(tmp_path / "out"), "rain", split="train")
    assert set(ds["id"]) == kept


def test_odd_modes_and_exif_are_stored_as_rgb_with_orientation_applied(broken_raw, tmp_path, photo):
    raw, _, _ = broken_raw
    report = build_dataset(raw, tmp_path / "out", progress=False)
    assert {c["mode"] for c in report.converted} >= {"CMYK", "I;16"}
    assert any(c["exif_orientation"] == 6 for c in report.converted)
    rows = {r["id"]: r for r in datasets.load_dataset(str(tmp_path / "out"), "rain", split="train")}
    assert all(rows[i]["lq"].mode == "RGB" for i in ("cmyk", "sixteen", "exifrot", "good"))
    assert rows["exifrot"]["lq"].size == (64, 96)  # shown as the viewer shows it (portrait)
    shown = np.asarray(rows["exifrot"]["lq"]).astype(float)
    assert np.abs(shown - np.rot90(photo[:64, :96], -1)).mean() < 8  # JPEG-close, and the right way up
    sixteen = np.asarray(rows["sixteen"]["lq"])[..., 0]
    assert np.array_equal(sixteen, photo[:64, :96, 0])  # v*257 scaled back exactly, not clipped
    good = np.asarray(rows["good"]["lq"])
    assert np.array_equal(good, photo[:64, :96])


@pytest.mark.parametrize("bad", ["truncated", "notimage", "missinghq", "mismatch", "zerobyte", "unsafe"])
def test_strict_stops_with_exit_2_naming_the_file(broken_raw, tmp_path, capsys, bad):
    raw, skipped, _ = broken_raw
    for other in skipped - {bad}:
        for side in ("lq", "hq"):
            for f in (raw / "train" / "rain" / side).glob(f"{other}.*"):
                f.unlink()
    if bad != "unsafe":
        (raw / "metadata.jsonl").unlink()
    code = main(["build", str(raw), "--out", str(tmp_path / "out"), "--strict"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "--strict" in err
    assert bad in err  # the message names the offending file (or metadata id)


def test_strict_accepts_odd_but_valid_images(broken_raw, tmp_path):
    raw, skipped, kept = broken_raw
    for other in skipped:
        for side in ("lq", "hq"):
            for f in (raw / "train" / "rain" / side).glob(f"{other}.*"):
                f.unlink()
    (raw / "metadata.jsonl").unlink()
    assert main(["build", str(raw), "--out", str(tmp_path / "out"), "--strict"]) == 0


def test_cli_bad_paths_give_one_line_errors(tmp_path):
    missing = tmp_path / "nope"
    proc = subprocess.run(
        [sys.executable, "-m", "ggt_datasets.cli", "build", str(missing), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and str(missing) in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "ggt_datasets.cli", "build", str(empty), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "no train or test folder" in proc.stderr


def test_cli_help_lists_subcommands():
    proc = subprocess.run([sys.executable, "-m", "ggt_datasets.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for name in ("demo", "sample", "build", "push"):
        assert name in proc.stdout
