"""Tests for the pure rollout planner (no Django, no cluster)."""

from __future__ import annotations

import doctest
from datetime import date, datetime
from decimal import Decimal
from itertools import pairwise

import pytest

from rollouts import planner
from rollouts.planner import (
    CandidateSite,
    FailureBudget,
    LeftOut,
    PlanError,
    PlannedSite,
    WaveStep,
    cumulative_sizes,
    describe_hold,
    format_waves,
    parse_failure_budget,
    parse_waves,
    plan_rollout,
)

STANDARD = "1,10%,50%,100%"


def pct(value: str) -> WaveStep:
    return WaveStep(percent=Decimal(value))


def cnt(value: int) -> WaveStep:
    return WaveStep(count=value)


# --- parse_waves ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100%", (pct("100"),)),
        (STANDARD, (cnt(1), pct("10"), pct("50"), pct("100"))),
        (" 1 , 10% ,50%, 100% ", (cnt(1), pct("10"), pct("50"), pct("100"))),
        ("2.5%,100%", (pct("2.5"), pct("100"))),
        ("1,5,25,100%", (cnt(1), cnt(5), cnt(25), pct("100"))),
        ("1,1,10%,10%,100%", (cnt(1), cnt(1), pct("10"), pct("10"), pct("100"))),
        ("100.0%", (pct("100.0"),)),
        ("0.5%,100%", (pct("0.5"), pct("100"))),
    ],
)
def test_parse_waves_valid(text: str, expected: tuple[WaveStep, ...]) -> None:
    assert parse_waves(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1,,100%", "wave 2 is empty"),
        ("1,100%,", "wave 3 is empty"),
        ("abc", "neither a site count"),
        ("1,ten%,100%", "neither a site count"),
        ("-1,100%", "neither a site count"),
        ("1.5,100%", "neither a site count"),
        ("%,100%", "neither a site count"),
        ("1e2%", "neither a site count"),
        ("0,100%", "at least 1"),
        ("0%,100%", "above 0%"),
        ("0.0%,100%", "above 0%"),
        ("150%", "cannot exceed 100%"),
        ("100.5%", "cannot exceed 100%"),
        ("50%,10%,100%", "cannot decrease"),
        ("5,2,100%", "cannot decrease"),
        ("10%,5,100%", "count after a percentage"),
        ("1,10%,50%", "last wave must be 100%"),
        ("1,5,10", "last wave must be 100%"),
        ("5", "last wave must be 100%"),
    ],
)
def test_parse_waves_invalid(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        parse_waves(text)


def test_plan_error_is_value_error() -> None:
    assert issubclass(PlanError, ValueError)


def test_format_waves_round_trips() -> None:
    assert format_waves(parse_waves(" 1, 2.50%, 100.0% ")) == "1,2.5%,100%"
    assert parse_waves(format_waves(parse_waves(STANDARD))) == parse_waves(STANDARD)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"count": 1, "percent": Decimal(5)}, {"count": 0}, {"percent": Decimal(0)}],
)
def test_wave_step_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(PlanError):
        WaveStep(**kwargs)  # type: ignore[arg-type]


# --- cumulative_sizes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (0, []),
        (1, [1]),
        (3, [1, 2, 3]),
        (7, [1, 4, 7]),
        (200, [1, 20, 100, 200]),
        (1000, [1, 100, 500, 1000]),
    ],
)
def test_cumulative_sizes_standard(total: int, expected: list[int]) -> None:
    assert cumulative_sizes(parse_waves(STANDARD), total) == expected


@pytest.mark.parametrize(
    ("text", "total", "expected"),
    [
        ("100%", 5, [5]),
        ("2.5%,100%", 200, [5, 200]),
        ("2.5%,100%", 10, [1, 10]),
        ("1,5,25,100%", 10, [1, 5, 10]),
        ("1,5,25,100%", 3, [1, 3]),
        ("1,1,10%,10%,100%", 100, [1, 10, 100]),
        ("33.3%,100%", 1000, [333, 1000]),
        ("33.4%,100%", 1000, [334, 1000]),
    ],
)
def test_cumulative_sizes_other(text: str, total: int, expected: list[int]) -> None:
    assert cumulative_sizes(parse_waves(text), total) == expected


@pytest.mark.parametrize("total", range(0, 60))
def test_cumulative_sizes_invariants(total: int) -> None:
    sizes = cumulative_sizes(parse_waves("1,2,5%,10%,25%,50%,100%"), total)
    assert all(a < b for a, b in pairwise(sizes))
    assert (sizes[-1] if sizes else 0) == total


def test_cumulative_sizes_always_ends_at_total() -> None:
    # Steps built by hand (not via parse_waves) that fall short still cover everything.
    assert cumulative_sizes([cnt(2), pct("50")], 10) == [2, 5, 10]
    assert cumulative_sizes([], 4) == [4]


def test_cumulative_sizes_rejects_negative_total() -> None:
    with pytest.raises(ValueError):
        cumulative_sizes(parse_waves(STANDARD), -1)


# --- failure budget ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "total", "allowed"),
    [
        ("5", 100, 5),
        (5, 100, 5),
        ("5", 3, 3),
        ("0", 100, 0),
        (0, 100, 0),
        ("10%", 100, 10),
        ("10%", 15, 1),
        ("10%", 5, 0),
        ("10%", 0, 0),
        ("2.5%", 200, 5),
        ("2.5%", 199, 4),
        ("0%", 50, 0),
        ("100%", 50, 50),
        (" 10 % ", 100, 10),
    ],
)
def test_failure_budget_allowed(text: str | int, total: int, allowed: int) -> None:
    assert parse_failure_budget(text).allowed(total) == allowed


def test_failure_budget_exceeded_count() -> None:
    budget = parse_failure_budget("2")
    assert budget == FailureBudget(count=2)
    assert not budget.exceeded(0, 50)
    assert not budget.exceeded(2, 50)
    assert budget.exceeded(3, 50)


def test_failure_budget_exceeded_percent() -> None:
    budget = parse_failure_budget("10%")
    assert budget == FailureBudget(percent=Decimal(10))
    assert not budget.exceeded(2, 20)
    assert budget.exceeded(3, 20)
    assert budget.exceeded(1, 9)  # 10% of 9 rounds down to 0


def test_failure_budget_zero_tolerates_nothing() -> None:
    budget = parse_failure_budget("0")
    assert not budget.exceeded(0, 10)
    assert budget.exceeded(1, 10)


@pytest.mark.parametrize("text", ["", "  ", "-1", -1, "abc", "1.5", "101%", "5%%", True])
def test_failure_budget_invalid(text: object) -> None:
    with pytest.raises(PlanError):
        parse_failure_budget(text)  # type: ignore[arg-type]


def test_failure_budget_str() -> None:
    assert str(parse_failure_budget("5")) == "5"
    assert str(parse_failure_budget("12.50%")) == "12.5%"


# --- plan_rollout --------------------------------------------------------------------------


def site(slug: str, **kwargs: object) -> CandidateSite:
    return CandidateSite(slug=slug, **kwargs)  # type: ignore[arg-type]


def test_plan_orders_canaries_first_then_by_slug() -> None:
    sites = [
        site("delta"),
        site("zulu", canary=True),
        site("alpha"),
        site("mike", canary=True),
        site("bravo"),
    ]
    plan = plan_rollout(sites, steps=parse_waves("2,100%"), image="img:2")
    assert [s.slug for s in plan.sites] == ["mike", "zulu", "alpha", "bravo", "delta"]
    assert plan.waves == (("mike", "zulu"), ("alpha", "bravo", "delta"))
    assert plan.total == 5
    assert plan.sites[0] == PlannedSite(slug="mike", canary=True, current_image=None)


def test_plan_is_stable_regardless_of_input_order() -> None:
    sites = [site(f"s{i:03d}", canary=i % 17 == 0) for i in range(50)]
    steps = parse_waves(STANDARD)
    first = plan_rollout(sites, steps=steps, image="img:2")
    second = plan_rollout(list(reversed(sites)), steps=steps, image="img:2")
    assert first == second
    assert [len(w) for w in first.waves] == [1, 4, 20, 25]
    assert first.waves[0] == ("s000",)
    assert first.waves[1] == ("s017", "s034", "s001", "s002")


def test_plan_waves_partition_the_sites() -> None:
    sites = [site(f"site-{i}") for i in range(200)]
    plan = plan_rollout(sites, steps=parse_waves(STANDARD), image=None)
    assert [len(w) for w in plan.waves] == [1, 19, 80, 100]
    flat = [slug for wave in plan.waves for slug in wave]
    assert flat == [s.slug for s in plan.sites]
    assert sorted(flat) == sorted(s.slug for s in sites)


def test_plan_leaves_out_held_busy_and_up_to_date_sites() -> None:
    hold = describe_hold(date(2026, 12, 1), "customer migration")
    sites = [
        site("held", held_reason=hold),
        site("busy", busy_reason="in running rollout #12"),
        site("current", current_image="img:2"),
        site("old", current_image="img:1"),
        site("both", held_reason=hold, busy_reason="in running rollout #3"),
    ]
    plan = plan_rollout(sites, steps=parse_waves("100%"), image="img:2")
    assert plan.waves == (("old",),)
    assert plan.sites == (PlannedSite(slug="old", canary=False, current_image="img:1"),)
    assert plan.total == 1
    assert plan.left_out == (
        LeftOut("both", "on hold until 2026-12-01: customer migration"),
        LeftOut("busy", "in running rollout #12"),
        LeftOut("current", "already on img:2"),
        LeftOut("held", "on hold until 2026-12-01: customer migration"),
    )


def test_plan_without_image_keeps_sites_on_any_image() -> None:
    sites = [site("a", current_image="img:2"), site("b", current_image=None)]
    plan = plan_rollout(sites, steps=parse_waves("100%"), image=None)
    assert plan.waves == (("a", "b"),)
    assert plan.left_out == ()


def test_plan_held_canary_is_left_out() -> None:
    sites = [site("canary", canary=True, held_reason="on hold until 2026-12-01"), site("b")]
    plan = plan_rollout(sites, steps=parse_waves(STANDARD), image="img:2")
    assert plan.waves == (("b",),)
    assert plan.left_out == (LeftOut("canary", "on hold until 2026-12-01"),)


def test_plan_small_selection_drops_empty_waves() -> None:
    sites = [site("c"), site("a"), site("b")]
    plan = plan_rollout(sites, steps=parse_waves(STANDARD), image="img:2")
    assert plan.waves == (("a",), ("b",), ("c",))
    assert plan.wave_of("b") == 1
    assert plan.wave_of("missing") is None


def test_plan_with_everything_left_out_is_empty() -> None:
    plan = plan_rollout([site("a", busy_reason="x")], steps=parse_waves(STANDARD), image="i")
    assert plan.waves == ()
    assert plan.total == 0
    assert plan_rollout([], steps=parse_waves(STANDARD), image="i").waves == ()


@pytest.mark.parametrize("sites", [[site("a"), site("a")], [site("")]])
def test_plan_rejects_bad_slugs(sites: list[CandidateSite]) -> None:
    with pytest.raises(PlanError):
        plan_rollout(sites, steps=parse_waves("100%"), image=None)


def test_describe_hold() -> None:
    assert describe_hold(date(2026, 12, 1), " billing dispute ") == (
        "on hold until 2026-12-01: billing dispute"
    )
    assert describe_hold(datetime(2026, 12, 1, 15, 30), "") == "on hold until 2026-12-01"


def test_module_doctests() -> None:
    result = doctest.testmod(planner)
    assert result.attempted > 0
    assert result.failed == 0
