"""Bake time: a healthy wave must stay healthy this long before the next wave starts.

Pure module (plain data in and out; the caller passes ``now``). OCM calls this
``minSuccessTime``. The engine starts a wave's bake when its last target has settled, counts it
from the later of that moment and the wave's (re)start (so a resume bakes afresh: nobody
watched the wave while it was paused), and on every tick of the bake reads the wave's
succeeded sites once: any that :func:`unavailable_reason` finds unhealthy fails for the wave,
and the failure budget decides, as for any failure, whether the rollout halts and reverts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cluster.status import DeploymentSnapshot

__all__ = ["BakeClock", "format_duration", "unavailable_reason"]


@dataclass(frozen=True)
class BakeClock:
    """The bake of one wave: ``seconds`` long, counted from ``since`` (None: not started)."""

    seconds: int
    since: datetime | None

    def ends_at(self) -> datetime | None:
        return None if self.since is None else self.since + timedelta(seconds=self.seconds)

    def remaining(self, now: datetime) -> timedelta | None:
        """Time left at ``now`` (never negative); None when the bake has not started."""
        ends = self.ends_at()
        return None if ends is None else max(ends - now, timedelta(0))

    def over(self, now: datetime) -> bool:
        ends = self.ends_at()
        return ends is not None and now >= ends


def unavailable_reason(snap: DeploymentSnapshot | None, *, bake_seconds: int) -> str | None:
    """Why a site that had rolled out is no longer healthy, or None while it is.

    Unhealthy: its Deployment is gone, failed (progress deadline), or has fewer available
    replicas than it wants (at least one), e.g. a pod that stopped being Ready.
    """
    prefix = f"unavailable during the {bake_seconds}s bake"
    if snap is None:
        return f"{prefix}: Deployment missing"
    if snap.state.failed:
        return f"{prefix}: {snap.state.message}"
    wanted = max(snap.desired_replicas if snap.desired_replicas is not None else 1, 1)
    if snap.available_replicas < wanted:
        return f"{prefix}: {snap.available_replicas} of {wanted} replicas available"
    return None


def format_duration(delta: timedelta | int) -> str:
    """``1h 02m 03s`` / ``4m 05s`` / ``7s``, for countdowns."""
    seconds = int(delta.total_seconds()) if isinstance(delta, timedelta) else int(delta)
    seconds = max(seconds, 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
