"""A thread-safe token bucket for pacing Kubernetes API calls.

Modelled on client-go's ``flowcontrol.NewTokenBucketRateLimiter`` (which wraps
``golang.org/x/time/rate``): the bucket starts full with ``burst`` tokens and refills at
``qps`` tokens per second up to ``burst``. :meth:`TokenBucket.acquire` takes one token and,
when none is left, *reserves* a future one and sleeps until it is due. Reservations are made
under a lock in call order, so concurrent callers are served first come, first served and
the long-run rate never exceeds ``qps`` (beyond the initial burst). A ``qps`` of zero or less
(or infinity) means unlimited: ``acquire`` never blocks.

The clock and sleep functions are injectable so tests can drive the bucket deterministically.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Token bucket rate limiter: ``burst`` tokens up front, then ``qps`` tokens per second.

    Args:
        qps: refill rate in tokens per second; ``<= 0`` or ``inf`` disables limiting.
        burst: bucket capacity and initial token count; must be >= 1 when limiting.
        clock: monotonic time source in seconds (default :func:`time.monotonic`).
        sleep: blocking sleep in seconds (default :func:`time.sleep`).
    """

    def __init__(
        self,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if math.isnan(qps):
            raise ValueError("qps must be a number, got NaN")
        self._unlimited = qps <= 0 or math.isinf(qps)
        if not self._unlimited and (isinstance(burst, bool) or burst < 1):
            raise ValueError(f"burst must be at least 1 when qps > 0, got {burst}")
        self._qps = float(qps)
        self._burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()

    @property
    def qps(self) -> float:
        """Configured refill rate (tokens per second)."""
        return self._qps

    @property
    def burst(self) -> int:
        """Configured bucket capacity."""
        return self._burst

    @property
    def unlimited(self) -> bool:
        """True when the bucket never blocks (``qps <= 0`` or infinite)."""
        return self._unlimited

    def _refill(self, now: float) -> None:
        """Add tokens for the time since the last update (caller holds the lock)."""
        elapsed = max(0.0, now - self._last)
        self._tokens = min(float(self._burst), self._tokens + elapsed * self._qps)
        self._last = max(self._last, now)

    def acquire(self) -> float:
        """Take one token, blocking until it is available; returns the seconds slept.

        The wait is computed and the token reserved while holding the lock; the sleep
        happens outside it so other threads can queue their own reservations.
        """
        if self._unlimited:
            return 0.0
        with self._lock:
            self._refill(self._clock())
            self._tokens -= 1.0
            wait = -self._tokens / self._qps if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def try_acquire(self) -> bool:
        """Take one token if one is available right now; never blocks."""
        if self._unlimited:
            return True
        with self._lock:
            self._refill(self._clock())
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False
