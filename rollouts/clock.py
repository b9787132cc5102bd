"""The one clock the rollout engine's policy reads: bake countdowns, maintenance windows,
wave deadlines and progress stamps.

``now()`` is ``django.utils.timezone.now()`` unless a test installed another clock with
:func:`use`; tests move time by changing what that clock returns instead of sleeping. Engine
leases stay on real time on purpose: they coordinate live processes, not rollout policy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

_clock: Callable[[], datetime] | None = None


def now() -> datetime:
    """The current instant (aware) as the rollout engine sees it."""
    return _clock() if _clock is not None else timezone.now()


def use(clock: Callable[[], datetime] | None) -> None:
    """Install ``clock`` (a callable returning aware datetimes); None restores real time."""
    global _clock
    _clock = clock
