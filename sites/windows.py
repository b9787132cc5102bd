"""Weekly maintenance windows in a site's own time zone: parse, format, evaluate.

Pure module: plain data in, plain data out. No Django, no network, no clock of its own (every
evaluation takes the instant ``now`` as an argument). Window text is hostile user input (it can
come from a signup document), so the parser refuses anything it does not fully understand,
with a message a customer or staff member can act on.

Syntax
    ``DAYS HH:MM-HH:MM ZONE``, e.g. ``Sun 02:00-05:00 Europe/London``.

    * ``DAYS``: comma-separated day names or ranges of them, ``Mon`` .. ``Sun`` (full names
      such as ``Sunday`` and any letter case are accepted), e.g. ``Sat,Sun`` or ``Mon-Fri``;
      ``daily`` means every day. A range may wrap (``Fri-Mon``).
    * ``HH:MM-HH:MM``: 24-hour wall-clock times; the end may be ``24:00``. An end earlier than
      the start crosses midnight: ``Sun 23:00-02:00`` opens on Sunday evening and closes on
      Monday morning (the day names the day the window *opens*). Start and end must differ.
    * ``ZONE``: an IANA time zone name known to ``zoneinfo`` (``Europe/London``,
      ``Australia/Sydney``, ``UTC``).

    :func:`format_window` renders the canonical text (``Sat,Sun 02:00-05:00 Europe/London``),
    which is what gets stored.

Semantics (the invariants the tests pin, across DST changes)
    An *occurrence* of a window is the half-open interval of instants ``[opens, closes)``.
    Each bound is "the first instant at which the zone's wall clock reaches that time on that
    local date":

    * a wall time that happens twice (the hour repeated when clocks go back) means its first
      occurrence, so the window is one contiguous stretch of real time;
    * a wall time that never happens (the hour skipped when clocks go forward) means the
      instant the clock jumps past it, so a window opening at 01:30 on a spring-forward night
      in London opens at 02:00 BST, as soon as the clock reads later than 01:30;
    * an occurrence that would be empty (it lies wholly in a skipped hour) does not happen.

    So a window's real length can differ from its nominal length on the two nights a year the
    clocks change, but it always opens and closes at the wall-clock times its text names.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = [
    "DAY_NAMES",
    "MAX_WINDOW_TEXT",
    "MaintenanceWindow",
    "Occurrence",
    "WindowError",
    "format_window",
    "parse_window",
]

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_WINDOW_TEXT = 100  # stored in a CharField of this length
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_SHOW_LIMIT = 40


class WindowError(ValueError):
    """A maintenance window text is invalid (the message is user-facing)."""


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a window: open for instants ``opens <= t < closes`` (aware, UTC)."""

    opens: datetime
    closes: datetime

    def contains(self, instant: datetime) -> bool:
        return self.opens <= instant < self.closes


@dataclass(frozen=True)
class MaintenanceWindow:
    """A weekly window: ``days`` (0 = Monday) on which it opens, wall-clock ``start``/``end``
    (``end`` None means 24:00), in IANA zone ``zone``. Build it with :func:`parse_window`."""

    days: frozenset[int]
    start: time
    end: time | None
    zone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def crosses_midnight(self) -> bool:
        return self.end is not None and self.end <= self.start

    def occurrences_from(self, local_day: date) -> Iterator[Occurrence]:
        """Non-empty occurrences of windows opening on ``local_day`` and the days after it."""
        tz = self.tz
        day = local_day
        while True:
            if day.weekday() in self.days:
                opens = _reach(day, self.start, tz)
                if self.end is None:
                    closes = _reach(day + timedelta(days=1), time(0), tz)
                else:
                    end_day = day + timedelta(days=1) if self.crosses_midnight else day
                    closes = _reach(end_day, self.end, tz)
                if closes > opens:
                    yield Occurrence(opens, closes)
            day += timedelta(days=1)

    def current_or_next(self, now: datetime) -> Occurrence:
        """The occurrence open at ``now`` (aware), or else the next one to open."""
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        # An occurrence open now opened at most a day ago (local date of now, or the day before).
        local_day = now.astimezone(self.tz).date() - timedelta(days=1)
        for occurrence in self.occurrences_from(local_day):
            if now < occurrence.closes:
                return occurrence
        raise AssertionError("unreachable: a window opens at least once a week")

    def is_open(self, now: datetime) -> bool:
        return self.current_or_next(now).contains(now)

    def next_opening(self, now: datetime) -> datetime:
        """When the window next opens after ``now``; ``now`` itself if it is open now."""
        occurrence = self.current_or_next(now)
        return now if occurrence.contains(now) else occurrence.opens

    def __str__(self) -> str:
        return format_window(self)


def _reach(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the wall clock in ``tz`` reaches ``wall`` on ``day``."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first  # the time exists; fold=0 is its first occurrence if it repeats
    # A skipped wall time. fold=0 reads it with the offset before the jump (an instant after
    # the jump), fold=1 with the offset after (an instant before it): the jump lies between.
    low = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = first
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def format_window(window: MaintenanceWindow) -> str:
    """Canonical text: days in week order (Mon first), zero-padded times, the zone name."""
    days = ",".join(DAY_NAMES[d] for d in sorted(window.days))
    if len(window.days) == 7:
        days = "daily"
    end = "24:00" if window.end is None else window.end.strftime("%H:%M")
    return f"{days} {window.start.strftime('%H:%M')}-{end} {window.zone}"


def _show(text: str) -> str:
    return repr(text[:_SHOW_LIMIT]) + ("..." if len(text) > _SHOW_LIMIT else "")


def _day(name: str) -> int:
    lowered = name.lower()
    for index, (short, full) in enumerate(zip(DAY_NAMES, _FULL_DAY_NAMES, strict=True)):
        if lowered in (short.lower(), full):
            return index
    raise WindowError(f"{_show(name)} is not a day name; use Mon, Tue, Wed, Thu, Fri, Sat or Sun")


def _days(text: str) -> frozenset[int]:
    if text.lower() == "daily":
        return frozenset(range(7))
    days: set[int] = set()
    for item in text.split(","):
        if not item:
            raise WindowError(f"the days {_show(text)} have an empty item; write e.g. 'Sat,Sun'")
        first, sep, last = item.partition("-")
        if not sep:
            days.add(_day(item))
            continue
        start, end = _day(first), _day(last)
        length = (end - start) % 7 + 1
        days.update((start + offset) % 7 for offset in range(length))
    return frozenset(days)


def _time(text: str, which: str) -> time | None:
    """``HH:MM`` as a time; ``24:00`` (allowed only as the end) as None."""
    match = _TIME.fullmatch(text)
    if not match:
        raise WindowError(f"the {which} time {_show(text)} must look like 02:00 (24-hour HH:MM)")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if which == "end" and (hours, minutes) == (24, 0):
        return None
    if hours > 23 or minutes > 59:
        raise WindowError(f"the {which} time {_show(text)} is not a time of day (00:00-23:59)")
    return time(hours, minutes)


@functools.lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _zone(text: str) -> str:
    if len(text) > 64 or not _ZONE_NAME.fullmatch(text):
        raise WindowError(f"the time zone {_show(text)} is not an IANA zone name (Europe/London)")
    if text not in _known_zones():
        raise WindowError(f"unknown time zone {_show(text)}; use an IANA name like Europe/London")
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"unknown time zone {_show(text)}") from None
    return text


def parse_window(text: object) -> MaintenanceWindow:
    """Parse ``"Sun 02:00-05:00 Europe/London"``; raise :class:`WindowError` saying what is wrong.

    Surrounding whitespace is ignored and runs of spaces between the three parts are allowed;
    anything else that is not in the syntax above is refused.
    """
    if not isinstance(text, str):
        raise WindowError("a maintenance window must be text like 'Sun 02:00-05:00 Europe/London'")
    if len(text) > MAX_WINDOW_TEXT:
        raise WindowError(f"a maintenance window must be at most {MAX_WINDOW_TEXT} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in text.strip()):
        raise WindowError(f"the maintenance window {_show(text)} contains a control character")
    parts = text.split()
    if len(parts) != 3:
        raise WindowError(
            f"the maintenance window {_show(text)} must be three parts: days, times and a time "
            "zone, like 'Sun 02:00-05:00 Europe/London'"
        )
    days_text, times_text, zone_text = parts
    start_text, sep, end_text = times_text.partition("-")
    if not sep:
        raise WindowError(f"the times {_show(times_text)} must be a range like 02:00-05:00")
    start = _time(start_text, "start")
    end = _time(end_text, "end")
    assert start is not None  # only the end may be 24:00
    if end == start:
        raise WindowError(f"the window {_show(times_text)} opens and closes at the same time")
    return MaintenanceWindow(days=_days(days_text), start=start, end=end, zone=_zone(zone_text))
