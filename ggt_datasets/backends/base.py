"""The two protocols every backend implements, and the plain records they return.

Backends are clients only: they know nothing of runs, ledgers or QC. Synthesis (`synth/`), QC
(`qc/`) and the VLM-R metric (`metrics/`) all talk to generators and VLMs through these.

Example:
    >>> from ggt_datasets.backends import make_generator  # doctest: +SKIP
    >>> gen = make_generator("classical")                 # doctest: +SKIP
    >>> result = gen.restore(lq_png_bytes, "remove the rain", {"category": "rain"})  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# finish_reason values. Everything that is not OK or BLOCKED is a transient fault for the caller.
FINISH_OK = "ok"
FINISH_BLOCKED = "blocked"  # a safety refusal: terminal, never retried by default


class TransientBackendError(RuntimeError):
    """A fault worth retrying (429, 5xx, timeout, dropped connection, no image, bad bytes).

    `retry_after` is the server's requested delay in seconds when it gave one.
    """

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class BlockedError(RuntimeError):
    """The backend refused the request (a safety block). Terminal; record it, do not retry."""


class BackendRequestError(RuntimeError):
    """A request the backend rejects for good (bad key, bad request, unknown model): not retried.

    `status` is the HTTP status when there was one. The message never contains the API key.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class FatalBackendError(BackendRequestError):
    """A fault that no item can get past (the backend cannot start, the key is refused): a run
    stops at once with this message instead of failing every item."""


class AuthError(FatalBackendError):
    """The API refused the credentials (401/403, invalid key); the message names the env var."""


@dataclass
class GenerationResult:
    """What a generator returns: the image it made and what it cost."""

    image: bytes  # encoded image bytes as the backend returned them
    mime_type: str  # e.g. "image/png"
    size: tuple[int, int]  # (width, height) of `image`
    finish_reason: str = FINISH_OK
    usage: dict[str, Any] = field(default_factory=dict)  # token counts etc., as reported
    cost_usd: float = 0.0  # from prices in config, 0.0 where unknown or free
    model: str = ""
    text: str = ""  # any text part the backend sent with the image


@dataclass
class DegradationReport:
    """A VLM's description of what is wrong with an LQ photo."""

    degradations: list[str]  # e.g. ["rain streaks", "jpeg blocking", "motion blur"]
    severity: dict[str, float] = field(default_factory=dict)  # degradation -> 0..1
    scene: str = ""  # a short description of the content, to be kept
    notes: str = ""


# The violation flags a VLM judge may set, the one list the judge instruction (vlm_common) and
# QC (qc.config.FLAGS, vlm.reject_flags) use; a flag outside it counts as a violation in QC.
JUDGE_FLAGS: tuple[str, ...] = (
    "scene_replaced", "objects_added", "objects_removed", "text_changed", "identity_changed",
    "colour_changed", "geometry_changed",
)


@dataclass
class JudgeResult:
    """A VLM judge's verdict on an (LQ, HQ) pair; score = sqrt(D * F)."""

    degradation_removal: float  # D, 0-100
    fidelity: float  # F, 0-100
    flags: list[str] = field(default_factory=list)  # names from JUDGE_FLAGS
    rationale: str = ""

    @property
    def score(self) -> float:
        return (max(self.degradation_removal, 0.0) * max(self.fidelity, 0.0)) ** 0.5


@dataclass
class QualityRating:
    """A VLM's rating of one image's quality (VLM-R), optionally of fidelity to an LQ, 0-100."""

    quality: float
    fidelity: float | None = None
    rationale: str = ""


@runtime_checkable
class Generator(Protocol):
    """Restores one LQ image given an instruction. Raises TransientBackendError / BlockedError."""

    name: str
    model: str

    def restore(self, image: bytes, prompt: str, params: dict[str, Any]) -> GenerationResult: ...


@runtime_checkable
class VLM(Protocol):
    """A vision-language model used to write prompts, judge pairs and rate quality."""

    name: str
    model: str

    def describe(self, image: bytes) -> DegradationReport: ...

    def write_prompt(self, image: bytes, report: DegradationReport) -> str: ...

    def judge(self, lq: bytes, hq: bytes, criteria: str) -> JudgeResult: ...

    def rate(self, image: bytes, lq: bytes | None = None) -> QualityRating: ...
