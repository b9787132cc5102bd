"""Maintenance windows (sites/windows.py) and the rollout window gate: pure, no database.

Instants are written in UTC on purpose: each DST test states what the local clock reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollouts.window_gate import gate, summarise
from sites.windows import WindowError, format_window, parse_window


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("Sun 02:00-05:00 Europe/London", "Sun 02:00-05:00 Europe/London"),
        ("  sunday   2:00-05:00  Europe/London ", "Sun 02:00-05:00 Europe/London"),
        ("Sat,Sun 23:30-01:00 UTC", "Sat,Sun 23:30-01:00 UTC"),
        (
            "Mon-Fri 01:00-03:00 America/New_York",
            "Mon,Tue,Wed,Thu,Fri 01:00-03:00 America/New_York",
        ),
        ("Fri-Mon 22:00-24:00 Australia/Sydney", "Mon,Fri,Sat,Sun 22:00-24:00 Australia/Sydney"),
        ("daily 00:00-24:00 Asia/Kolkata", "daily 00:00-24:00 Asia/Kolkata"),
        ("Mon-Sun 03:00-04:00 UTC", "daily 03:00-04:00 UTC"),
    ],
)
def test_parse_and_canonical_form(text: str, canonical: str) -> None:
    window = parse_window(text)
    assert format_window(window) == canonical
    assert parse_window(canonical) == window  # the canonical form reads back the same


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "three parts"),
        ("Sun 02:00-05:00", "three parts"),
        ("Sun 02:00-05:00 Europe/London extra", "three parts"),
        ("Sundae 02:00-05:00 Europe/London", "'Sundae' is not a day name"),
        ("Sat,,Sun 02:00-05:00 UTC", "empty item"),
        ("Sun 02:00 Europe/London", "must be a range"),
        ("Sun 2am-5am Europe/London", "must look like 02:00"),
        ("Sun 25:00-05:00 Europe/London", "not a time of day"),
        ("Sun 02:60-05:00 Europe/London", "not a time of day"),
        ("Sun 24:00-05:00 Europe/London", "not a time of day"),  # 24:00 only as the end
        ("Sun 02:00-02:00 Europe/London", "opens and closes at the same time"),
        ("Sun 02:00-05:00 Europe/Londn", "unknown time zone 'Europe/Londn'"),
        ("Sun 02:00-05:00 ../../etc/passwd", "not an IANA zone name"),
        ("Sun 02:00-05:00 /etc/localtime", "not an IANA zone name"),
        ("Sun 02:00-05:00 Europe/London\u202e", "control character"),
        ("Sun\x0002:00-05:00 UTC", "control character"),
        ("Sun 02:00-05:00 " + "A" * 120, "at most 100 characters"),
    ],
)
def test_invalid_windows_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(WindowError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_window(text)


def test_non_text_is_refused() -> None:
    for value in (None, 3, ["Sun 02:00-05:00 UTC"], {"days": "Sun"}):
        with pytest.raises(WindowError, match="must be text"):
            parse_window(value)


# --- evaluation --------------------------------------------------------------------------------


def test_open_and_next_opening_in_winter_and_summer_london() -> None:
    window = parse_window("Sun 02:00-05:00 Europe/London")
    # Winter (GMT = UTC): Sunday 2026-01-04.
    assert not window.is_open(utc(2026, 1, 4, 1, 59))
    assert window.is_open(utc(2026, 1, 4, 2, 0))
    assert window.is_open(utc(2026, 1, 4, 4, 59))
    assert not window.is_open(utc(2026, 1, 4, 5, 0))
    assert window.next_opening(utc(2026, 1, 4, 5, 0)) == utc(2026, 1, 11, 2, 0)
    # Summer (BST = UTC+1): the same wall-clock window is an hour earlier in UTC.
    assert window.is_open(utc(2026, 7, 5, 1, 0))
    assert not window.is_open(utc(2026, 7, 5, 4, 0))
    assert window.next_opening(utc(2026, 7, 1, 12, 0)) == utc(2026, 7, 5, 1, 0)
    assert window.next_opening(utc(2026, 7, 5, 2, 30)) == utc(2026, 7, 5, 2, 30)  # open now


def test_window_crossing_midnight_belongs_to_the_day_it_opens() -> None:
    window = parse_window("Sat 23:00-02:00 UTC")
    assert window.is_open(utc(2026, 1, 3, 23, 30))  # Saturday night
    assert window.is_open(utc(2026, 1, 4, 1, 59))  # Sunday small hours
    assert not window.is_open(utc(2026, 1, 4, 2, 0))
    assert not window.is_open(utc(2026, 1, 4, 23, 30))  # Sunday night: not a Saturday
    occurrence = window.current_or_next(utc(2026, 1, 1))
    assert (occurrence.opens, occurrence.closes) == (utc(2026, 1, 3, 23), utc(2026, 1, 4, 2))


def test_london_spring_forward() -> None:
    """2026-03-29: at 01:00 GMT the clock jumps to 02:00 BST; 01:00-01:59 never happens."""
    window = parse_window("Sun 01:30-03:00 Europe/London")
    occurrence = window.current_or_next(utc(2026, 3, 28, 12))
    # Opens the moment the clock is past 01:30 (the jump, 02:00 BST), closes at 03:00 BST.
    assert occurrence.opens == utc(2026, 3, 29, 1, 0)
    assert occurrence.closes == utc(2026, 3, 29, 2, 0)
    assert not window.is_open(utc(2026, 3, 29, 0, 59))
    assert window.is_open(utc(2026, 3, 29, 1, 0))
    # The 02:00-05:00 window is unaffected by the jump but is an hour earlier in UTC.
    usual = parse_window("Sun 02:00-05:00 Europe/London").current_or_next(utc(2026, 3, 28, 12))
    assert (usual.opens, usual.closes) == (utc(2026, 3, 29, 1), utc(2026, 3, 29, 4))
    # A window wholly inside the skipped hour does not happen that week: the next one opens.
    skipped = parse_window("Sun 01:10-01:50 Europe/London")
    assert skipped.next_opening(utc(2026, 3, 28, 12)) == utc(2026, 4, 5, 0, 10)
    # The night before the change the window is on GMT; the week after on BST.
    before = window.current_or_next(utc(2026, 3, 21, 12))
    after = window.current_or_next(utc(2026, 4, 1))
    assert before.opens == utc(2026, 3, 22, 1, 30) and after.opens == utc(2026, 4, 5, 0, 30)


def test_london_fall_back() -> None:
    """2026-10-25: at 02:00 BST the clock goes back to 01:00 GMT; 01:00-01:59 happens twice."""
    window = parse_window("Sun 01:00-02:00 Europe/London")
    occurrence = window.current_or_next(utc(2026, 10, 24, 12))
    # From the first 01:00 (BST) until the clock reads 02:00 (GMT): two real hours.
    assert occurrence.opens == utc(2026, 10, 25, 0, 0)
    assert occurrence.closes == utc(2026, 10, 25, 2, 0)
    assert occurrence.closes - occurrence.opens == timedelta(hours=2)
    assert window.is_open(utc(2026, 10, 25, 1, 30))  # the second 01:30 (GMT)
    # A window ending inside the repeated hour ends at its first occurrence.
    short = parse_window("Sun 00:30-01:30 Europe/London").current_or_next(utc(2026, 10, 24, 12))
    assert (short.opens, short.closes) == (utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 0, 30))
    # 02:00-05:00 that Sunday is on GMT already.
    usual = parse_window("Sun 02:00-05:00 Europe/London").current_or_next(utc(2026, 10, 24, 12))
    assert (usual.opens, usual.closes) == (utc(2026, 10, 25, 2), utc(2026, 10, 25, 5))


def test_southern_hemisphere_sydney() -> None:
    """Sydney: AEST (+10) in July, AEDT (+11) in January. DST starts 2026-10-04 (02:00 ->
    03:00) and ends 2026-04-05 (03:00 -> 02:00)."""
    window = parse_window("Sun 02:00-04:00 Australia/Sydney")
    winter = window.current_or_next(utc(2026, 7, 1))  # Sunday 2026-07-05, AEST
    assert (winter.opens, winter.closes) == (utc(2026, 7, 4, 16), utc(2026, 7, 4, 18))
    summer = window.current_or_next(utc(2026, 1, 1))  # Sunday 2026-01-04, AEDT
    assert (summer.opens, summer.closes) == (utc(2026, 1, 3, 15), utc(2026, 1, 3, 17))
    # Spring forward: 02:00-02:59 is skipped, so the window opens at the jump (03:00 AEDT).
    spring = window.current_or_next(utc(2026, 10, 3))
    assert (spring.opens, spring.closes) == (utc(2026, 10, 3, 16), utc(2026, 10, 3, 17))
    # Fall back: 02:00-02:59 happens twice; the window opens at the first 02:00 (AEDT) and
    # closes when the clock reads 04:00 (AEST): three real hours.
    autumn = window.current_or_next(utc(2026, 4, 4))
    assert (autumn.opens, autumn.closes) == (utc(2026, 4, 4, 15), utc(2026, 4, 4, 18))


def test_naive_now_is_a_programmer_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_window("Sun 02:00-05:00 UTC").is_open(datetime(2026, 1, 4, 3))


# --- the rollout window gate -------------------------------------------------------------------


def test_gate_releases_sites_in_their_window_or_without_one_and_holds_the_rest() -> None:
    now = utc(2026, 1, 4, 3)  # Sunday 03:00 UTC
    result = gate(
        [
            ("none", ""),
            ("open", "Sun 02:00-05:00 Europe/London"),
            ("later", "Mon 02:00-05:00 Europe/London"),
            ("broken", "Sun 02:00-05:00 Mars/Olympus"),
        ],
        now=now,
    )
    assert result.open == {"none": None, "open": utc(2026, 1, 4, 2)}
    assert result.held["later"].opens_at == utc(2026, 1, 5, 2)
    assert "Mon 02:00-05:00 Europe/London" in result.held["later"].reason
    assert result.held["broken"].opens_at is None
    assert "unreadable" in result.held["broken"].reason


def test_summarise_counts_sites_in_window_and_when_the_rest_open() -> None:
    summary = summarise(
        [
            "",
            "Sun 02:00-05:00 UTC",
            "Mon 02:00-05:00 UTC",
            "Mon 02:00-05:00 UTC",
            "Tue 01:00-02:00 UTC",
        ],
        now=utc(2026, 1, 4, 3),
    )
    assert (summary.open_now, summary.no_window, summary.patchable_now) == (1, 1, 2)
    assert summary.opening == ((utc(2026, 1, 5, 2), 2), (utc(2026, 1, 6, 1), 1))
    assert summary.held == 3
