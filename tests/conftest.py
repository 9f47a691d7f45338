"""Shared fixtures: real photographs (shipped with scikit-image) and tiny data built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from ggt_datasets.images import load_rgb

# Real colour photographs that ship with scikit-image (no download).
PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "retina")


def real_photo(name: str = "astronaut", size: int | None = None) -> np.ndarray:
    """A real RGB uint8 photo from scikit-image, optionally center-cropped to size x size."""
    folder = Path(skimage.data.__file__).parent
    path = next(folder / f"{name}{ext}" for ext in (".png", ".jpg") if (folder / f"{name}{ext}").is_file())
    img = load_rgb(path)
    if size is not None:
        h, w = img.shape[:2]
        if min(h, w) < size:
            raise ValueError(f"{name} is {w}x{h}, smaller than {size}")
        top, left = (h - size) // 2, (w - size) // 2
        img = img[top : top + size, left : left + size]
    return img


@pytest.fixture
def photo() -> np.ndarray:
    """astronaut.png, 512x512 RGB uint8."""
    return real_photo("astronaut")


@pytest.fixture
def photos() -> list[np.ndarray]:
    """Six real colour photos of different sizes (RGB uint8)."""
    return [real_photo(n) for n in PHOTO_NAMES]


# --- No silent skips -------------------------------------------------------------------------
# A skipped test is not coverage: a broken import or a missing dependency must fail the run.
# Only these reasons may skip (a skip's reason must start with one of them); any other skip makes
# the session fail, with the offending tests listed at the end.
ALLOWED_SKIP_REASONS = ("needs CUDA",)
_unexpected_skips: list[tuple[str, str]] = []


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if not reason.startswith(ALLOWED_SKIP_REASONS):
            _unexpected_skips.append((report.nodeid, reason))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _unexpected_skips:
        terminalreporter.section("skips that are not allowed (tests/conftest.py ALLOWED_SKIP_REASONS)")
        for nodeid, reason in _unexpected_skips:
            terminalreporter.line(f"{nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected_skips and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
