"""A thread-safe token bucket for pacing Kubernetes API calls.

Modelled on client-go's ``flowcontrol.NewTokenBucketRateLimiter`` (which wraps
``golang.org/x/time/rate``): the bucket starts full with ``burst`` tokens and refills at
``qps`` tokens per second up to ``burst``. :meth:`TokenBucket.acquire` takes one token and,
when none is left, *reserves* a future one and sleeps until it is due. Reservations are made
under a lock in call order, so concurrent callers are served first come, first served and
the long-run rate never exceeds ``qps`` (beyond the initial burst). A ``qps`` of zero or less
(or infinity) means unlimited: ``acquire`` never blocks.

The clock and sleep functions are injectable so tests can drive the bucket deterministically.

:class:`AdaptiveRateLimiter` is the bucket the gateway uses: it also listens to the server.
A 429 (API Priority and Fairness rejecting the request, or any other throttling answer) holds
every caller until its ``Retry-After`` has passed and halves the rate; without further 429s
the rate climbs back linearly to the configured one. It never exceeds the configured rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["AdaptiveRateLimiter", "TokenBucket"]


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

    def _set_rate(self, qps: float, now: float) -> None:
        """Change the refill rate from ``now`` on (caller holds the lock)."""
        self._refill(now)
        self._qps = qps

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


class AdaptiveRateLimiter(TokenBucket):
    """A :class:`TokenBucket` whose rate follows the server's throttling answers.

    Invariants:
    - The rate starts at, and never exceeds, the configured ``qps`` (the ceiling).
    - :meth:`throttled` (a 429 with its ``Retry-After``) holds every later :meth:`acquire`
      until the pause has passed, and halves the rate, at most once per pause (a burst of
      concurrent 429s is one signal, not sixteen), never below ``ceiling * min_fraction``.
      The burst is spent too, so the pause is not followed by a burst.
    - After the pause, the rate climbs back linearly, by ``ceiling / recovery`` per second.
    - Unlimited (``qps <= 0``): never blocks and ignores :meth:`throttled` (the caller still
      waits out each ``Retry-After`` itself before retrying).
    """

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        min_fraction: float = 1 / 16,
        recovery: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(qps, burst, clock=clock, sleep=sleep)
        self._ceiling = self._qps
        self._floor = self._qps * min_fraction
        self._recovery = recovery
        self._paused_until = clock()
        self._dropped_to = self._qps  # the rate right after the last 429
        self.throttle_count = 0

    @property
    def ceiling(self) -> float:
        """The configured rate: where the limiter starts and what it climbs back to."""
        return self._ceiling

    def _recover(self, now: float) -> None:
        """Climb back towards the ceiling after a pause (caller holds the lock)."""
        if self._qps >= self._ceiling or now <= self._paused_until:
            return
        climbed = (now - self._paused_until) * self._ceiling / self._recovery
        self._set_rate(min(self._ceiling, self._dropped_to + climbed), now)

    def acquire(self) -> float:
        """Wait out any pause the server asked for, then take a token; returns seconds slept."""
        if self._unlimited:
            return 0.0
        paused = 0.0
        while True:
            with self._lock:
                now = self._clock()
                wait = self._paused_until - now
                if wait <= 0:
                    self._recover(now)
                    break
            self._sleep(wait)
            paused += wait
        return paused + super().acquire()

    def throttled(self, retry_after: float | None) -> float:
        """The server answered 429: pause everyone for ``retry_after`` s (default 1), slow down.

        Returns the pause still to run from now (0 when unlimited).
        """
        if self._unlimited:
            return 0.0
        pause = 1.0 if retry_after is None else max(0.0, retry_after)
        with self._lock:
            now = self._clock()
            already_paused = now < self._paused_until
            self._paused_until = max(self._paused_until, now + pause)
            if not already_paused:
                self.throttle_count += 1
                self._dropped_to = max(self._floor, self._qps / 2)
                self._set_rate(self._dropped_to, now)
                self._tokens = min(self._tokens, 0.0)
                self._last = self._paused_until  # no tokens accrue while paused
            return self._paused_until - now
