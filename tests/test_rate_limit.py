"""Tests for cluster.rate_limit.TokenBucket (deterministic fake clock plus one threaded test)."""

from __future__ import annotations

import math
import threading
import time

import pytest

from cluster.rate_limit import AdaptiveRateLimiter, TokenBucket


class FakeTime:
    """A manual clock; ``sleep`` records the request and (optionally) advances the clock."""

    def __init__(self, advance_on_sleep: bool = True) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.advance_on_sleep = advance_on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance_on_sleep:
            self.now += seconds

    def bucket(self, qps: float, burst: int) -> TokenBucket:
        return TokenBucket(qps, burst, clock=self.clock, sleep=self.sleep)


def test_burst_is_available_immediately() -> None:
    fake = FakeTime()
    bucket = fake.bucket(qps=2, burst=5)
    assert [bucket.acquire() for _ in range(5)] == [0.0] * 5
    assert fake.sleeps == []


def test_acquire_after_burst_waits_for_refill() -> None:
    fake = FakeTime()
    bucket = fake.bucket(qps=10, burst=2)
    bucket.acquire()
    bucket.acquire()
    waits = [bucket.acquire() for _ in range(3)]
    assert waits == pytest.approx([0.1, 0.1, 0.1])
    assert fake.sleeps == pytest.approx([0.1, 0.1, 0.1])
    assert fake.now == pytest.approx(1000.3)


def test_reservations_queue_when_clock_does_not_move() -> None:
    # Models several callers reserving before any of them wakes: each waits one slot longer.
    fake = FakeTime(advance_on_sleep=False)
    bucket = fake.bucket(qps=4, burst=1)
    assert bucket.acquire() == 0.0
    waits = [bucket.acquire() for _ in range(3)]
    assert waits == pytest.approx([0.25, 0.5, 0.75])


def test_tokens_refill_with_time() -> None:
    fake = FakeTime()
    bucket = fake.bucket(qps=4, burst=3)
    for _ in range(3):
        bucket.acquire()
    fake.now += 0.5  # two tokens refilled
    assert bucket.acquire() == 0.0
    assert bucket.acquire() == 0.0
    assert bucket.acquire() == pytest.approx(0.25)


def test_refill_is_capped_at_burst() -> None:
    fake = FakeTime()
    bucket = fake.bucket(qps=100, burst=3)
    fake.now += 3600
    assert [bucket.acquire() for _ in range(3)] == [0.0] * 3
    assert bucket.acquire() == pytest.approx(0.01)


def test_partial_refill_shortens_wait() -> None:
    fake = FakeTime()
    bucket = fake.bucket(qps=1, burst=1)
    bucket.acquire()
    fake.now += 0.75
    assert bucket.acquire() == pytest.approx(0.25)


def test_clock_going_backwards_does_not_mint_or_burn_tokens() -> None:
    fake = FakeTime()
    bucket = fake.bucket(qps=1, burst=1)
    bucket.acquire()
    fake.now -= 10
    assert bucket.acquire() == pytest.approx(1.0)


def test_long_run_rate_matches_qps() -> None:
    fake = FakeTime()
    bucket = fake.bucket(qps=5, burst=10)
    start = fake.now
    for _ in range(110):
        bucket.acquire()
    # 10 free, then 100 tokens at 5 per second.
    assert fake.now - start == pytest.approx(20.0)


@pytest.mark.parametrize("qps", [0, -1, -0.5, math.inf])
def test_non_positive_or_infinite_qps_is_unlimited(qps: float) -> None:
    fake = FakeTime()
    bucket = fake.bucket(qps=qps, burst=0)
    assert bucket.unlimited
    assert all(bucket.acquire() == 0.0 for _ in range(1000))
    assert bucket.try_acquire()
    assert fake.sleeps == []


def test_try_acquire_never_blocks() -> None:
    fake = FakeTime()
    bucket = fake.bucket(qps=2, burst=2)
    assert bucket.try_acquire()
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    fake.now += 0.5
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    assert fake.sleeps == []


def test_try_acquire_respects_pending_reservations() -> None:
    fake = FakeTime(advance_on_sleep=False)
    bucket = fake.bucket(qps=1, burst=1)
    bucket.acquire()
    bucket.acquire()  # reserves the token due in 1s
    fake.now += 1.0
    assert not bucket.try_acquire()
    fake.now += 1.0
    assert bucket.try_acquire()


@pytest.mark.parametrize("burst", [0, -1])
def test_invalid_burst_rejected(burst: int) -> None:
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(5, burst)


def test_nan_qps_rejected() -> None:
    with pytest.raises(ValueError, match="qps"):
        TokenBucket(math.nan, 1)


def test_properties() -> None:
    bucket = TokenBucket(5, 10)
    assert (bucket.qps, bucket.burst, bucket.unlimited) == (5.0, 10, False)


def test_concurrent_acquires_are_all_served() -> None:
    qps, burst, threads, per_thread = 500.0, 5, 4, 10
    bucket = TokenBucket(qps, burst)
    served: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for _ in range(per_thread):
                bucket.acquire()
                with lock:
                    served.append(index)
        except BaseException as exc:  # pragma: no cover - surfaced by the assert below
            errors.append(exc)

    start = time.monotonic()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=10)
    elapsed = time.monotonic() - start

    assert not errors
    assert not any(thread.is_alive() for thread in workers)
    assert len(served) == threads * per_thread
    assert sorted(set(served)) == list(range(threads))
    # Beyond the burst, tokens arrive at qps: 35 extra tokens take at least 70ms.
    assert elapsed >= (threads * per_thread - burst) / qps * 0.9


# --- AdaptiveRateLimiter: the gateway's limiter, which slows down when the server throttles ---


def adaptive(fake: FakeTime, qps: float = 10, burst: int = 2, **kw) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(qps, burst, clock=fake.clock, sleep=fake.sleep, **kw)


def test_adaptive_starts_at_the_configured_rate() -> None:
    fake = FakeTime()
    limiter = adaptive(fake, qps=10, burst=2)
    waits = [limiter.acquire() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.1])
    assert limiter.qps == limiter.ceiling == 10


def test_a_429_pauses_every_caller_for_retry_after_and_halves_the_rate() -> None:
    fake = FakeTime()
    limiter = adaptive(fake, qps=10, burst=5)
    assert limiter.throttled(2.0) == pytest.approx(2.0)
    assert limiter.qps == 5
    # The next caller waits out the pause, and the burst was spent: then one token at 5/s.
    assert limiter.acquire() == pytest.approx(2.0 + 0.2)
    assert fake.now == pytest.approx(1002.2)


def test_concurrent_429s_within_one_pause_are_one_signal() -> None:
    fake = FakeTime()
    limiter = adaptive(fake, qps=16, burst=16)
    for _ in range(16):  # a burst of 16 threads all answered 429
        limiter.throttled(1.0)
    assert limiter.qps == 8
    assert limiter.throttle_count == 1


def test_the_rate_never_drops_below_its_floor() -> None:
    fake = FakeTime()
    limiter = adaptive(fake, qps=16, burst=1, min_fraction=1 / 4)
    for _ in range(10):
        limiter.throttled(1.0)
        fake.now += 1.0  # each 429 after the previous pause
    assert limiter.qps == 4


def test_the_rate_climbs_back_linearly_and_never_above_the_ceiling() -> None:
    fake = FakeTime()
    limiter = adaptive(fake, qps=10, burst=100, recovery=10.0)
    limiter.throttled(1.0)
    assert limiter.qps == 5
    fake.now += 1.0 + 2.5  # the pause, then 2.5 s at ceiling / recovery = 1 qps per second
    limiter.acquire()
    assert limiter.qps == pytest.approx(7.5)
    fake.now += 60.0
    limiter.acquire()
    assert limiter.qps == 10


def test_retry_after_without_a_value_pauses_one_second() -> None:
    fake = FakeTime()
    limiter = adaptive(fake, qps=10, burst=5)
    assert limiter.throttled(None) == pytest.approx(1.0)


def test_unlimited_adaptive_never_blocks_and_ignores_throttling() -> None:
    fake = FakeTime()
    limiter = adaptive(fake, qps=0, burst=1)
    assert limiter.throttled(5.0) == 0.0
    assert [limiter.acquire() for _ in range(100)] == [0.0] * 100
    assert fake.sleeps == []
