"""How a synthesis run proceeds: `SynthConfig`, checked when made, and the --shard partition.

Example:
    >>> from ggt_datasets.synth.config import SynthConfig, parse_shard
    >>> SynthConfig(concurrency=32, rpm=600, shard=parse_shard("0/4")).shard
    (0, 4)
"""

from __future__ import annotations

from dataclasses import dataclass

from ggt_datasets.synth.normalize import FITS
from ggt_datasets.synth.prompts import PROMPT_MODES


@dataclass
class SynthConfig:
    """How a run proceeds (what it makes is set by the generator and the prompts)."""

    prompt_mode: str = "fixed"
    prompt_dir: str | None = None
    concurrency: int = 8
    rpm: float | None = None  # requests per minute over all workers; None = unlimited
    max_attempts: int = 5
    scale: float = 1
    fit: str = "resize"  # see normalize.py
    retry_failed: bool = False
    retry_blocked: bool = False
    shard: tuple[int, int] | None = None  # (i, N): this process takes items with hash % N == i
    limit: int | None = None
    backoff_base: float = 2.0  # seconds before the first retry; doubles per attempt
    backoff_max: float = 120.0
    breaker_threshold: int = 20  # consecutive transient faults that pause every worker
    breaker_pause: float = 30.0  # first pause in seconds; doubles while faults continue
    progress: bool = True
    secrets: tuple[str, ...] = ()  # extra strings never to record (keys passed by flag)
    backend_config: str | None = None  # a YAML merged over the backends' models.yaml

    def __post_init__(self) -> None:
        if self.prompt_mode not in PROMPT_MODES:
            raise ValueError(f"--prompt-mode must be one of {', '.join(PROMPT_MODES)}, got {self.prompt_mode!r}")
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.rpm is not None and self.rpm <= 0:
            raise ValueError(f"--rpm must be positive, got {self.rpm}")
        if self.max_attempts < 1:
            raise ValueError(f"--max-attempts must be at least 1, got {self.max_attempts}")
        if self.scale <= 0:
            raise ValueError(f"--scale must be positive, got {self.scale}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"--limit must be >= 0, got {self.limit}")
        if self.shard is not None:
            i, n = self.shard
            if not (n >= 1 and 0 <= i < n):
                raise ValueError(f"--shard i/N needs 0 <= i < N, got {i}/{n}")


def parse_shard(text: str) -> tuple[int, int]:
    """'2/8' -> (2, 8)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard i/N needs 0 <= i < N, got {text!r}")
    return i, n


def in_shard(item_id: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic partition by the item's hash: every id is in exactly one of N shards."""
    return shard is None or int(item_id[:12], 16) % shard[1] == shard[0]
