"""Pacing shared by every worker of a run: a requests-per-minute limit and a circuit breaker.

Example:
    >>> limiter = RateLimiter(rpm=240)       # one request every ~0.25 s, no burst
    >>> breaker = CircuitBreaker(threshold=20, pause=30.0)
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger(__name__)


class RateLimiter:
    """Requests-per-minute limit shared by all workers: evenly spaced starts, no burst.

    Spacing is 1% wider than 60/rpm, so a server counting any 60 s window never sees rpm + 1.
    """

    def __init__(self, rpm: float | None):
        self.interval = 60.0 / rpm * 1.01 if rpm else 0.0
        self._next = 0.0

    async def acquire(self, stop: asyncio.Event | None = None) -> None:
        """Wait for this request's start time (returns early once `stop` is set)."""
        if not self.interval:
            return
        now = time.monotonic()
        start = max(self._next, now)
        self._next = start + self.interval
        if start > now:
            await (sleep_unless(stop, start - now) if stop is not None else asyncio.sleep(start - now))


class CircuitBreaker:
    """Pauses every worker after `threshold` consecutive transient faults; pauses double."""

    def __init__(self, threshold: int, pause: float, max_pause: float = 600.0):
        self.threshold, self.first_pause, self.max_pause = threshold, pause, max_pause
        self.pause, self.consecutive, self.open_until, self.trips = pause, 0, 0.0, 0

    def success(self) -> None:
        self.consecutive, self.pause = 0, self.first_pause

    def failure(self) -> None:
        self.consecutive += 1
        if self.consecutive >= self.threshold and time.monotonic() >= self.open_until:
            log.warning("%d transient faults in a row: pausing all requests for %.0f s", self.consecutive, self.pause)
            self.open_until = time.monotonic() + self.pause
            self.pause = min(self.pause * 2, self.max_pause)
            self.consecutive, self.trips = 0, self.trips + 1

    async def wait(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and (left := self.open_until - time.monotonic()) > 0:
            await sleep_unless(stop, min(left, 1.0))


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
    except asyncio.TimeoutError:
        pass
