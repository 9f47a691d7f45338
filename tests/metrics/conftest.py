"""Fixtures for the metrics tests: real photos (scikit-image) as a callable fixture."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data


def _real_photo(name: str = "astronaut", size: int | None = None) -> np.ndarray:
    """A real RGB uint8 photo from scikit-image, optionally center-cropped to size x size."""
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = np.ascontiguousarray(img[..., :3])
    if size is not None:
        h, w = img.shape[:2]
        top, left = (h - size) // 2, (w - size) // 2
        img = img[top : top + size, left : left + size]
    return img


@pytest.fixture
def real_photo():
    """real_photo(name, size=None) -> uint8 RGB array of a scikit-image photograph."""
    return _real_photo
