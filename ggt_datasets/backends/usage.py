"""Counting VLM requests and their cost per caller, across threads.

A caller opens `metered(meter)` around work that may call a VLM (an adaptive prompt, a judge
verdict, a VLM-R rating); the VLM backends `charge` every request they send and the cost of every
answer to the meters open in the calling thread. Meters nest (an item's meter inside a run's).

Example:
    >>> from ggt_datasets.backends.usage import Meter, charge, metered
    >>> m = Meter()
    >>> with metered(m):
    ...     charge(requests=1, cost_usd=0.002)
    >>> m.requests, m.cost_usd
    (1, 0.002)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_local = threading.local()


@dataclass(eq=False)  # meters are told apart by identity on the stack
class Meter:
    """VLM requests sent (answered or not) and what their answers cost."""

    requests: int = 0
    cost_usd: float = 0.0


@contextmanager
def metered(meter: Meter | None = None) -> Iterator[Meter]:
    """Charge this thread's VLM calls to `meter` (a new one if None) while the block runs."""
    meter = meter if meter is not None else Meter()
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(meter)
    try:
        yield meter
    finally:
        stack.pop()  # blocks nest: ours is the last one


def charge(requests: int = 0, cost_usd: float = 0.0) -> None:
    """Add to every meter open in this thread (no-op when none is)."""
    for meter in getattr(_local, "stack", ()):
        meter.requests += requests
        meter.cost_usd += cost_usd
