"""The seeded plan of a chaos run: which rollouts, in which order, and the fault schedule.

Pure: everything here is drawn from one ``random.Random(seed)``, so a seed names one plan
(the order and parameters of every step and fault). When each fault lands relative to the
engine's work still depends on timing; the plan is what a replay repeats exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

V1 = "subscribie/subscribie:v1"
BROKEN_MARK = ":broken-"  # kubesim fail_images regex: pods of these images never become Ready

# Fault kinds, with the weight each gets after the first round (which has one of each).
FAULT_WEIGHTS: dict[str, int] = {
    "429 retry-after": 3,
    "500 after apply": 3,
    "503 burst": 3,
    "latency": 2,
    "cut watches": 1,
    "cut LIST": 2,
    "kubesim restart": 1,
    "couchdb paused mid-sync": 1,
    "SIGKILL worker": 1,
    "SIGKILL qcluster": 1,
}
FAULT_KINDS = tuple(FAULT_WEIGHTS)


@dataclass(frozen=True)
class ChaosConfig:
    """Sizes and timings of one run. ``sites`` and ``rollouts`` are the bench's knobs."""

    seed: int
    sites: int = 300
    rollouts: int = 5
    signups: int = 0  # initial signup documents; 0 means as many as sites
    ready_after: float = 0.05  # seconds before a kubesim pod is Ready
    fault_gap: tuple[float, float] = (0.5, 3.0)  # seconds between two faults
    wave_timeout: int = 120
    broken_wave_timeout: int = 6  # the broken canary fails at this wave deadline
    rollout_timeout: float = 240.0  # a rollout not finished by then is stuck
    job_seconds: int = 2  # ROLLOUT_JOB_SECONDS of the qcluster
    lease_seconds: int = 4  # ROLLOUT_LEASE_SECONDS of the qcluster
    max_faults: int | None = 40  # the schedule's length (None: until the last rollout ends)

    @property
    def time_limit(self) -> float:
        """Seconds one rollout may take before it counts as stuck (grows with the fleet)."""
        return self.rollout_timeout + 0.5 * self.sites

    @property
    def signup_docs(self) -> int:
        return self.signups or self.sites


@dataclass(frozen=True)
class RolloutStep:
    """One rollout of the sequence.

    ``kind``: upgrade, broken (an image whose pods never become Ready), cancel_revert
    (cancelled with revert partway), cancel (cancelled, sites left as they are) or rollback
    (of the latest rollout that changed sites). ``pause_at``/``cancel_at``: the fraction of
    targets claimed at which the driver pauses (for ``pause_for`` seconds) or cancels.
    """

    kind: str
    waves: str
    pause_at: float | None = None
    pause_for: float = 0.0
    cancel_at: float | None = None


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: wait ``delay`` seconds, then inject ``kind`` with ``params``."""

    delay: float
    kind: str
    params: dict = field(default_factory=dict)


WAVE_CHOICES = ("1,10%,50%,100%", "1,25%,100%", "2,20%,60%,100%")


def plan_rollouts(rng: random.Random, count: int) -> list[RolloutStep]:
    """An upgrade first (so a rollback has something to undo), then a shuffle that contains a
    broken image, a cancel with revert and a rollback (as many as ``count`` allows), with
    upgrades and plain cancels filling the rest. At least one step pauses and resumes."""
    required = ["broken", "cancel_revert", "rollback"]
    rest = [rng.choice(("upgrade", "upgrade", "cancel")) for _ in range(max(0, count - 4))]
    tail = required + rest
    rng.shuffle(tail)
    kinds = ["upgrade", *tail][: max(1, count)]
    steps = []
    for kind in kinds:
        waves = "1,10%,100%" if kind == "broken" else rng.choice(WAVE_CHOICES)
        pause = kind in ("upgrade", "cancel_revert", "rollback") and rng.random() < 0.6
        cancel = kind in ("cancel", "cancel_revert")
        steps.append(
            RolloutStep(
                kind=kind,
                waves=waves,
                pause_at=round(rng.uniform(0.05, 0.6), 2) if pause else None,
                pause_for=round(rng.uniform(0.5, 2.5), 2) if pause else 0.0,
                cancel_at=round(rng.uniform(0.05, 0.5), 2) if cancel else None,
            )
        )
    if not any(s.pause_at is not None for s in steps):
        first = steps[0]
        steps[0] = RolloutStep(first.kind, first.waves, 0.3, 1.0, first.cancel_at)
    return steps


def fault_params(rng: random.Random, kind: str) -> dict:
    """The parameters of one fault of ``kind`` (counts, statuses, durations)."""
    if kind == "429 retry-after":
        return {"count": rng.randint(1, 6), "retry_after": rng.choice((1, 1, 2))}
    if kind == "500 after apply":
        return {"count": rng.randint(1, 4)}
    if kind == "503 burst":
        return {"verb": rng.choice((None, "list", "patch", "get")), "count": rng.randint(2, 8)}
    if kind == "latency":
        return {
            "verb": rng.choice(("list", "patch")),
            "latency": round(rng.uniform(0.1, 1.2), 2),
            "count": rng.randint(1, 8),
        }
    if kind == "cut LIST":
        return {"count": rng.randint(1, 3)}
    if kind == "kubesim restart":
        return {"down_for": round(rng.uniform(0.2, 2.5), 2)}
    if kind == "couchdb paused mid-sync":
        return {
            "docs": rng.randint(20, 60),
            "stop_after": round(rng.uniform(0.0, 0.15), 3),
            "stopped_for": round(rng.uniform(0.3, 2.5), 2),
        }
    if kind == "SIGKILL worker":
        return {"pick": rng.random()}
    if kind == "SIGKILL qcluster":
        return {"down_for": round(rng.uniform(0.2, 2.0), 2)}
    return {}


def fault_schedule(
    rng: random.Random, gap: tuple[float, float], limit: int | None = None
) -> Iterator[Fault]:
    """``limit`` faults (endless without one): first one of each kind in a shuffled order,
    then weighted draws."""
    first = list(FAULT_KINDS)
    rng.shuffle(first)
    kinds, weights = list(FAULT_WEIGHTS), list(FAULT_WEIGHTS.values())
    n = 0
    while limit is None or n < limit:
        kind = first[n] if n < len(first) else rng.choices(kinds, weights)[0]
        yield Fault(round(rng.uniform(*gap), 2), kind, fault_params(rng, kind))
        n += 1
