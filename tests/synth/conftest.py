"""Fixtures for the synthesis engine: real photos as LQ folders and a scripted generator."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from ggt_datasets.backends.base import (
    BackendRequestError,
    BlockedError,
    DegradationReport,
    GenerationResult,
    TransientBackendError,
)

NAMES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina")


def photo(name: str, size: int = 128, aspect: float = 1.0) -> np.ndarray:
    """A real photo from scikit-image, resized to size x round(size / aspect), with light rain-like noise."""
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    img = np.ascontiguousarray(img[..., :3])
    img = cv2.resize(img, (size, max(8, round(size / aspect))), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(sum(map(ord, name)))
    noisy = img.astype(np.float32) + rng.normal(0, 8, img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_image(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def lq_dir(tmp_path: Path) -> Path:
    """LQ/<category>/*.png: 3 rain, 2 haze, 1 snow photos (128 px, different aspect ratios)."""
    root = tmp_path / "lq"
    plan = [("rain", "astronaut", 1.0), ("rain", "chelsea", 1.5), ("rain", "coffee", 0.75),
            ("haze", "rocket", 1.0), ("haze", "hubble_deep_field", 1.25), ("snow", "retina", 1.0)]
    for cat, name, aspect in plan:
        write_image(root / cat / f"{name}.png", photo(name, 128, aspect))
    return root


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def image_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ScriptedGenerator:
    """A Generator whose answers per input image follow a script, then `default`.

    Outcomes: ok, transient, rate_limit, blocked, request_error, wrong_aspect, blank, bad_bytes.
    `calls[sha256(image)]` counts every call; `latency` seconds of sleep per call.
    """

    name = "scripted"
    model = "scripted-1"

    def __init__(self, script: dict[str, list[str]] | None = None, default: str = "ok", latency: float = 0.0):
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.default, self.latency = default, latency
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0

    def restore(self, image: bytes, prompt: str, params: dict) -> GenerationResult:
        key = image_key(image)
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            outcome = self.script[key].pop(0) if self.script.get(key) else self.default
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            return self._answer(outcome, image)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _answer(self, outcome: str, image: bytes) -> GenerationResult:
        if outcome == "transient":
            raise TransientBackendError("scripted: HTTP 503 unavailable", status=503)
        if outcome == "rate_limit":
            raise TransientBackendError("scripted: HTTP 429 quota", retry_after=0.01, status=429)
        if outcome == "blocked":
            raise BlockedError("scripted: output blocked (finish_reason IMAGE_SAFETY)")
        if outcome == "request_error":
            raise BackendRequestError("scripted: HTTP 400 bad request", status=400)
        arr = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
        h, w = arr.shape[:2]
        if outcome == "wrong_aspect":
            arr = cv2.resize(arr, (w * 2, h))
        elif outcome == "blank":
            arr = np.full_like(arr, 128)
        elif outcome == "ok":
            arr = cv2.GaussianBlur(arr, (3, 3), 0)
        else:
            assert outcome == "bad_bytes", outcome
        data = png(arr) if outcome != "bad_bytes" else b"\x89PNG\r\n\x1a\n" + b"\0" * 40
        return GenerationResult(data, "image/png", (arr.shape[1], arr.shape[0]), cost_usd=0.01, model=self.model)


class CountingVLM:
    """A VLM that counts its calls; describe -> a fixed report, write_prompt -> an instruction."""

    name = "counting"
    model = "counting-vlm-1"

    def __init__(self):
        self.describes = self.prompts = 0

    def describe(self, image: bytes) -> DegradationReport:
        self.describes += 1
        return DegradationReport(degradations=["rain streaks", "noise"], severity={"rain streaks": 0.6}, scene="a cat")

    def write_prompt(self, image: bytes, report: DegradationReport) -> str:
        self.prompts += 1
        return f"Remove the {report.degradations[0]} from this photo of {report.scene}."

    def judge(self, lq, hq, criteria):  # pragma: no cover - not used by synthesis
        raise NotImplementedError

    def rate(self, image, lq=None):  # pragma: no cover
        raise NotImplementedError


@pytest.fixture
def kit():
    """The helpers above, for test modules (importlib mode cannot import conftest by name)."""
    import types

    return types.SimpleNamespace(ScriptedGenerator=ScriptedGenerator, CountingVLM=CountingVLM, image_key=image_key,
                                 photo=photo, png=png, write_image=write_image)
