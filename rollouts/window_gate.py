"""Which of a wave's sites may be patched now under "respect maintenance windows".

Pure module: window texts and the instant ``now`` in, plain data out. A site with no window
(blank text) may be patched at once; a site with a window only while it is open. Stored window
texts were validated when they were written (signup validation, the Site admin); one that no
longer parses (say a time zone removed from the tz database) holds its site rather than
patching it outside a window nobody can read, and says why.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sites.windows import MaintenanceWindow, WindowError, parse_window

__all__ = ["Held", "WaveWindows", "WindowGate", "gate", "summarise"]


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> MaintenanceWindow | WindowError:
    try:
        return parse_window(text)
    except WindowError as exc:
        return exc


@dataclass(frozen=True)
class Held:
    """A site outside its window: when it next opens (None: the window text is unreadable)."""

    opens_at: datetime | None
    reason: str


@dataclass(frozen=True)
class WindowGate:
    """``open``: keys patchable now, with the instant their window opened (None: no window);
    ``held``: keys to wait, with when their window opens."""

    open: dict[Hashable, datetime | None] = field(default_factory=dict)
    held: dict[Hashable, Held] = field(default_factory=dict)


def gate(sites: Iterable[tuple[Hashable, str]], *, now: datetime) -> WindowGate:
    """Split ``(key, window text)`` pairs into patchable now and held (see module docstring)."""
    result = WindowGate()
    for key, text in sites:
        text = (text or "").strip()
        if not text:
            result.open[key] = None
            continue
        window = _parsed(text)
        if isinstance(window, WindowError):
            result.held[key] = Held(None, f"maintenance window unreadable: {window}")
            continue
        occurrence = window.current_or_next(now)
        if occurrence.contains(now):
            result.open[key] = occurrence.opens
        else:
            result.held[key] = Held(occurrence.opens, f"waiting for window {window}")
    return result


@dataclass(frozen=True)
class WaveWindows:
    """For one wave's sites at ``now``: how many may be patched now and when the rest open.

    ``open_now`` counts sites inside their window, ``no_window`` sites without one (patched at
    once), ``opening`` is ``[(opens_at, count)]`` sorted by time, ``unreadable`` counts sites
    whose window text no longer parses (held).
    """

    open_now: int = 0
    no_window: int = 0
    opening: tuple[tuple[datetime, int], ...] = ()
    unreadable: int = 0

    @property
    def patchable_now(self) -> int:
        return self.open_now + self.no_window

    @property
    def held(self) -> int:
        return sum(n for _, n in self.opening) + self.unreadable


def summarise(windows: Iterable[str], *, now: datetime) -> WaveWindows:
    """:class:`WaveWindows` for the window texts of one wave's sites."""
    result = gate(enumerate(windows), now=now)
    no_window = sum(1 for opened in result.open.values() if opened is None)
    opening = Counter(h.opens_at for h in result.held.values() if h.opens_at is not None)
    return WaveWindows(
        open_now=len(result.open) - no_window,
        no_window=no_window,
        opening=tuple(sorted(opening.items())),
        unreadable=sum(1 for h in result.held.values() if h.opens_at is None),
    )
