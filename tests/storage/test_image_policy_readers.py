"""The EXIF/mode policy holds in `ggt eval` and in what synthesis sends to a generator.

The expected pixels are computed here by hand (gray replicated, alpha dropped, 16-bit / 257,
EXIF rotation undone), not by the library's own reader.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import real_photo
from ggt_datasets import cli
from ggt_datasets.images import decode_rgb
from ggt_datasets.synth.inputs import generator_input


def _photo() -> np.ndarray:
    return real_photo("chelsea", size=96)


def _variant(kind: str, rgb: np.ndarray) -> tuple[bytes, np.ndarray]:
    """(file bytes in the odd form, the RGB pixels the policy must read from it)."""
    buf = io.BytesIO()
    if kind == "L":
        gray = rgb[..., 0]
        Image.fromarray(gray, "L").save(buf, "PNG")
        return buf.getvalue(), np.repeat(gray[..., None], 3, axis=2)
    if kind == "LA":
        la = np.dstack([rgb[..., 1], np.full(rgb.shape[:2], 77, np.uint8)])
        Image.fromarray(la, "LA").save(buf, "PNG")
        return buf.getvalue(), np.repeat(rgb[..., 1:2], 3, axis=2)
    if kind == "RGBA":
        alpha = np.linspace(0, 255, rgb.shape[0] * rgb.shape[1]).astype(np.uint8).reshape(rgb.shape[:2])
        rgba = np.dstack([rgb, alpha])
        Image.fromarray(rgba, "RGBA").save(buf, "PNG")
        return buf.getvalue(), rgb
    if kind == "I;16":
        gray16 = rgb[..., 2].astype(np.uint16) * 257  # exactly v / 257 back
        Image.frombytes("I;16", gray16.shape[::-1], gray16.astype("<u2").tobytes()).save(buf, "PNG")
        return buf.getvalue(), np.repeat(rgb[..., 2:3], 3, axis=2)
    if kind == "P":
        img = Image.fromarray(rgb).quantize(colors=32)
        img.save(buf, "PNG")
        palette = np.asarray(img.getpalette(), np.uint8).reshape(-1, 3)
        return buf.getvalue(), palette[np.asarray(img)]
    if kind == "EXIF6":  # stored turned a quarter left, tagged "rotate 90 CW to display"
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(np.ascontiguousarray(np.rot90(rgb, k=1))).save(buf, "PNG", exif=exif)
        return buf.getvalue(), rgb
    raise ValueError(kind)


KINDS = ["L", "LA", "RGBA", "I;16", "P", "EXIF6"]


@pytest.mark.parametrize("kind", KINDS)
def test_ggt_eval_reads_odd_files_as_a_viewer_shows_them(tmp_path: Path, kind: str) -> None:
    data, expected = _variant(kind, _photo())
    (tmp_path / "pred").mkdir()
    (tmp_path / "ref").mkdir()
    (tmp_path / "pred" / "x.png").write_bytes(data)
    Image.fromarray(expected).save(tmp_path / "ref" / "x.png")
    out = tmp_path / "scores.json"
    assert cli.main(["eval", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                     "--metrics", "psnr,ssim", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["means"]["psnr"] == "inf" and doc["means"]["ssim"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_synthesis_sends_the_pixels_a_viewer_shows(tmp_path: Path, kind: str) -> None:
    data, expected = _variant(kind, _photo())
    path = tmp_path / "lq.png"
    path.write_bytes(data)
    sent, mime = generator_input(path)
    assert mime == "image/png" and sent != data  # re-encoded: not plain RGB as stored
    assert np.array_equal(decode_rgb(sent), expected)


def test_plain_rgb_inputs_are_sent_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "lq.png"
    Image.fromarray(_photo()).save(path)
    sent, mime = generator_input(path)
    assert sent == path.read_bytes() and mime == "image/png"
