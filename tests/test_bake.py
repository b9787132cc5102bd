"""Bake-time policy (rollouts/bake.py): pure, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cluster.status import DeploymentSnapshot, RolloutState
from rollouts.bake import BakeClock, format_duration, unavailable_reason

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HEALTHY = DeploymentSnapshot(
    name="s", slug="s", image="img:2", generation=2, observed_generation=2, revision=2,
    desired_replicas=2, ready_replicas=2, updated_replicas=2, available_replicas=2,
    paused=False, change_cause=None, state=RolloutState("done", "rolled out"),
)  # fmt: skip


def test_bake_clock_counts_down_and_is_over_at_its_end() -> None:
    bake = BakeClock(300, T0)
    assert bake.remaining(T0 + timedelta(seconds=100)) == timedelta(seconds=200)
    assert not bake.over(T0 + timedelta(seconds=299))
    assert bake.over(T0 + timedelta(seconds=300))
    assert bake.remaining(T0 + timedelta(hours=1)) == timedelta(0)
    assert BakeClock(300, None).remaining(T0) is None and not BakeClock(300, None).over(T0)


def test_unavailable_reason() -> None:
    assert unavailable_reason(HEALTHY, bake_seconds=60) is None
    assert "Deployment missing" in unavailable_reason(None, bake_seconds=60)
    one_down = replace(HEALTHY, available_replicas=1)
    assert unavailable_reason(one_down, bake_seconds=60) == (
        "unavailable during the 60s bake: 1 of 2 replicas available"
    )
    failed = replace(HEALTHY, state=RolloutState("failed", "exceeded its progress deadline"))
    assert "exceeded its progress deadline" in unavailable_reason(failed, bake_seconds=60)
    scaled_to_zero = replace(HEALTHY, desired_replicas=0, available_replicas=0)
    assert "0 of 1" in unavailable_reason(scaled_to_zero, bake_seconds=60)


def test_format_duration() -> None:
    assert format_duration(7) == "7s"
    assert format_duration(timedelta(seconds=245)) == "4m 05s"
    assert format_duration(3723) == "1h 02m 03s"
    assert format_duration(-5) == "0s"
