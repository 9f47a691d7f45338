"""One pixel limit, checked from the header before any decode, on every reader in images.py."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from ggt_datasets import images
from ggt_datasets.images import ImageError, decode_rgb, inspect_image, load_rgb
from ggt_datasets.testing.hostile import jpeg_declaring, png_declaring

READERS = [load_rgb, inspect_image, decode_rgb]


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("reader", READERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("data", [png_declaring(20000, 20000), jpeg_declaring(30000, 30000)], ids=["png", "jpeg"])
def test_declared_giants_are_refused(reader, data: bytes) -> None:
    with pytest.raises(ImageError, match="GGT_MAX_PIXELS"):
        reader(data, name="giant.img")


def test_limit_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _png(100, 60)  # 6000 pixels
    monkeypatch.setenv("GGT_MAX_PIXELS", "5999")
    for reader in READERS:
        with pytest.raises(ImageError, match=r"100x60 = 6,000 pixels is over the limit of 5,999"):
            reader(data, name="small.png")
    monkeypatch.setenv("GGT_MAX_PIXELS", "6000")
    assert load_rgb(data).shape == (60, 100, 3)
    assert inspect_image(data).size == (100, 60)
    assert decode_rgb(data).shape == (60, 100, 3)


def test_bad_limit_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GGT_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="GGT_MAX_PIXELS='lots'"):
        images.max_pixels()


def test_default_limit_loads_under_pillow_defaults() -> None:
    """Every image the limit lets through opens with a stock Pillow, without a bomb warning."""
    import PIL.Image

    pillow_default = 89_478_485  # PIL.Image.MAX_IMAGE_PIXELS as shipped (int(1024 * 1024 * 1024 // 4 // 3))
    assert images.DEFAULT_MAX_PIXELS <= pillow_default
    assert PIL.Image.MAX_IMAGE_PIXELS == images.DEFAULT_MAX_PIXELS


def test_memory_of_refusing_a_hostile_image_is_bounded() -> None:
    """A ~100-byte PNG declaring 20000x20000 costs almost nothing to refuse (measured in a child)."""
    script = textwrap.dedent(
        """
        import resource
        from ggt_datasets.images import ImageError, load_rgb, decode_rgb, inspect_image
        from ggt_datasets.testing.hostile import png_declaring
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        data = png_declaring(20000, 20000)
        for reader in (load_rgb, decode_rgb, inspect_image):
            try:
                reader(data)
            except ImageError:
                pass
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
        """
    )
    grown_mb = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert grown_mb < 500
