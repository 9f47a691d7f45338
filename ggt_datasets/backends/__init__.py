"""Clients of image generators and VLMs behind the `Generator` and `VLM` protocols."""

from ggt_datasets.backends.base import (
    FINISH_BLOCKED,
    FINISH_OK,
    BlockedError,
    DegradationReport,
    GenerationResult,
    Generator,
    JudgeResult,
    QualityRating,
    TransientBackendError,
    VLM,
)

__all__ = [
    "FINISH_BLOCKED",
    "FINISH_OK",
    "BlockedError",
    "DegradationReport",
    "GenerationResult",
    "Generator",
    "JudgeResult",
    "QualityRating",
    "TransientBackendError",
    "VLM",
]
