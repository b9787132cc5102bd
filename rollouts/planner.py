"""Pure rollout planning: wave strategies, failure budgets and the rollout preview.

This module has no Django, database or network dependencies; the rollout views and engine
feed it plain values and store what it returns.

Wave strategies
    A strategy is a cumulative, comma-separated list such as ``"1,10%,50%,100%"``. Each item
    is either an absolute site count (an integer >= 1) or a percentage of the selection
    (``0 < p <= 100``, decimals allowed, e.g. ``2.5%``). Item *n* is the total number of sites
    that should have been rolled out once wave *n* is done, so wave sizes are differences
    between consecutive items. Rules (violations raise :class:`PlanError`):

    * absolute counts come before percentages: a count after a percentage would shrink the
      plan for any large enough selection (``10%,5`` is ``20,5`` for 200 sites);
    * counts are non-decreasing and percentages are non-decreasing (equal neighbours are
      allowed and simply produce no extra wave);
    * the last item must be ``100%``. An absolute count is rejected as the last item even if
      it happens to equal today's selection size: a plan that may never reach the whole
      selection is an error, and the plan is parsed before the selection is known.

Failure budgets
    ``"5"`` (or ``5``) allows up to 5 failed targets; ``"10%"`` allows 10% of the rollout's
    targets, rounded **down** (10% of 15 targets allows 1 failure; 10% of 5 allows none).
    ``"0"`` means no failure is tolerated. The budget is exceeded when ``failed > allowed``.

Preview
    :func:`plan_rollout` decides which candidate sites take part and in which wave. Canary
    sites come first, sorted by slug, then every other site sorted by slug, so the same
    inputs always give the same plan. Sites are left out, with a reason, when they are on an
    unexpired hold, busy in another rollout, or (when a target image is given) already run
    that image. When several reasons apply, the first of hold, busy, already-on-image wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction

__all__ = [
    "CandidateSite",
    "FailureBudget",
    "LeftOut",
    "PlanError",
    "PlannedSite",
    "RolloutPlan",
    "WaveStep",
    "cumulative_sizes",
    "describe_hold",
    "format_waves",
    "parse_failure_budget",
    "parse_waves",
    "plan_rollout",
]

_COUNT_RE = re.compile(r"^\d+$")
_PERCENT_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*%$")
_HUNDRED = Decimal(100)


class PlanError(ValueError):
    """A wave strategy, failure budget or candidate list is invalid (message is user-facing)."""


def _format_percent(percent: Decimal) -> str:
    """Render a percentage without exponent or trailing zeros: ``Decimal("2.50")`` -> ``2.5%``."""
    text = format(percent.normalize(), "f")
    return f"{text}%"


@dataclass(frozen=True)
class WaveStep:
    """One item of a cumulative wave strategy: exactly one of ``count`` or ``percent`` is set.

    ``count`` is an absolute number of sites (>= 1); ``percent`` is a share of the selection
    in ``(0, 100]``.
    """

    count: int | None = None
    percent: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.count is None) == (self.percent is None):
            raise PlanError("a wave step is either a count or a percentage")
        if self.count is not None and (isinstance(self.count, bool) or self.count < 1):
            raise PlanError(f"a wave count must be at least 1, got {self.count}")
        if self.percent is not None and not (0 < self.percent <= _HUNDRED):
            raise PlanError(
                f"a wave percentage must be above 0% and at most 100%, got {self.percent}%"
            )

    @property
    def is_percent(self) -> bool:
        """True when this step is a percentage of the selection."""
        return self.percent is not None

    def target(self, total: int) -> int:
        """Cumulative number of sites this step covers for a selection of ``total`` sites.

        Percentages round up (``ceil(total * p / 100)``) and cover at least one site when the
        selection is not empty; counts are capped at ``total``.
        """
        if total <= 0:
            return 0
        if self.count is not None:
            return min(self.count, total)
        assert self.percent is not None
        return max(1, math.ceil(Fraction(total) * Fraction(self.percent) / 100))

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        assert self.percent is not None
        return _format_percent(self.percent)


def _parse_step(item: str, position: int) -> WaveStep:
    """Parse one strategy item; ``position`` is 1-based, for error messages."""
    if not item:
        raise PlanError(f"wave {position} is empty")
    if _COUNT_RE.match(item):
        count = int(item)
        if count < 1:
            raise PlanError(f"wave {position} ({item!r}): a site count must be at least 1")
        return WaveStep(count=count)
    match = _PERCENT_RE.match(item)
    if match:
        percent = Decimal(match.group(1))
        if percent <= 0:
            raise PlanError(f"wave {position} ({item!r}): a percentage must be above 0%")
        if percent > _HUNDRED:
            raise PlanError(f"wave {position} ({item!r}): a percentage cannot exceed 100%")
        return WaveStep(percent=percent)
    raise PlanError(
        f"wave {position} ({item!r}) is neither a site count like '5' nor a percentage like '10%'"
    )


def parse_waves(text: str) -> tuple[WaveStep, ...]:
    """Parse a cumulative wave strategy such as ``"1,10%,50%,100%"``.

    Whitespace around items is ignored. Raises :class:`PlanError` when the text is empty,
    contains an item that is not a count or percentage, contains 0 / 0% / more than 100%,
    decreases, puts a count after a percentage, or does not end with ``100%``. See the module
    docstring for the full rules.
    """
    if not isinstance(text, str):
        raise PlanError("the wave strategy must be text such as '1,10%,50%,100%'")
    stripped = text.strip()
    if not stripped:
        raise PlanError("the wave strategy is empty; use something like '1,10%,50%,100%'")
    steps: list[WaveStep] = []
    for position, raw in enumerate(stripped.split(","), start=1):
        step = _parse_step(raw.strip(), position)
        if steps:
            previous = steps[-1]
            if previous.percent is not None and step.count is not None:
                raise PlanError(
                    f"wave {position} ({step}) is a site count after a percentage "
                    f"({previous}); put absolute counts first"
                )
            if (
                previous.count is not None
                and step.count is not None
                and step.count < previous.count
            ) or (
                previous.percent is not None
                and step.percent is not None
                and step.percent < previous.percent
            ):
                raise PlanError(
                    f"waves are cumulative and cannot decrease: wave {position} ({step}) "
                    f"is smaller than wave {position - 1} ({previous})"
                )
        steps.append(step)
    last = steps[-1]
    if last.percent != _HUNDRED:
        raise PlanError(
            f"the last wave must be 100% so the rollout covers the whole selection (got {last})"
        )
    return tuple(steps)


def format_waves(steps: Sequence[WaveStep]) -> str:
    """Render steps back to canonical strategy text, e.g. ``"1,10%,50%,100%"``."""
    return ",".join(str(step) for step in steps)


def cumulative_sizes(steps: Sequence[WaveStep], total: int) -> list[int]:
    """Cumulative target counts per wave for a selection of ``total`` sites.

    Waves that would add no site (because rounding makes them equal to the previous one) are
    dropped, the result is strictly increasing, and it always ends at ``total`` (a final
    wave is appended if the steps fall short). An empty selection gives ``[]``.

    >>> cumulative_sizes(parse_waves("1,10%,50%,100%"), 200)
    [1, 20, 100, 200]
    >>> cumulative_sizes(parse_waves("1,10%,50%,100%"), 3)
    [1, 2, 3]
    """
    if isinstance(total, bool) or not isinstance(total, int):
        raise TypeError(f"total must be an int, got {type(total).__name__}")
    if total < 0:
        raise ValueError(f"total must not be negative, got {total}")
    sizes: list[int] = []
    for step in steps:
        size = step.target(total)
        if size > (sizes[-1] if sizes else 0):
            sizes.append(size)
    if total and (not sizes or sizes[-1] != total):
        sizes.append(total)
    return sizes


@dataclass(frozen=True)
class FailureBudget:
    """How many failed targets a rollout tolerates before it halts.

    Exactly one of ``count`` (>= 0 failures) or ``percent`` (0-100 % of the targets, rounded
    down) is set.
    """

    count: int | None = None
    percent: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.count is None) == (self.percent is None):
            raise PlanError("a failure budget is either a count or a percentage")
        if self.count is not None and (isinstance(self.count, bool) or self.count < 0):
            raise PlanError(f"a failure budget cannot be negative, got {self.count}")
        if self.percent is not None and not (0 <= self.percent <= _HUNDRED):
            raise PlanError(f"a failure budget must be between 0% and 100%, got {self.percent}%")

    def allowed(self, total: int) -> int:
        """Number of failed targets tolerated in a rollout of ``total`` targets.

        Percentages round down; the result never exceeds ``total``.
        """
        if total < 0:
            raise ValueError(f"total must not be negative, got {total}")
        if self.count is not None:
            return min(self.count, total)
        assert self.percent is not None
        return math.floor(Fraction(total) * Fraction(self.percent) / 100)

    def exceeded(self, failed: int, total: int) -> bool:
        """True when ``failed`` failures out of ``total`` targets is more than allowed."""
        return failed > self.allowed(total)

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        assert self.percent is not None
        return _format_percent(self.percent)


def parse_failure_budget(text: str | int) -> FailureBudget:
    """Parse ``"5"`` / ``5`` (up to 5 failures) or ``"10%"`` (10 % of targets, rounded down).

    Raises :class:`PlanError` for empty, negative, non-numeric or above-100 % budgets.
    """
    if isinstance(text, bool):
        raise PlanError("the failure budget must be a count like '5' or a percentage like '10%'")
    if isinstance(text, int):
        if text < 0:
            raise PlanError(f"the failure budget cannot be negative, got {text}")
        return FailureBudget(count=text)
    if not isinstance(text, str):
        raise PlanError("the failure budget must be a count like '5' or a percentage like '10%'")
    item = text.strip()
    if not item:
        raise PlanError(
            "the failure budget is empty; use a count like '5' or a percentage like '10%'"
        )
    if _COUNT_RE.match(item):
        return FailureBudget(count=int(item))
    match = _PERCENT_RE.match(item)
    if match:
        percent = Decimal(match.group(1))
        if percent > _HUNDRED:
            raise PlanError(f"the failure budget cannot exceed 100%, got {item!r}")
        return FailureBudget(percent=percent)
    raise PlanError(
        f"the failure budget {item!r} is neither a count like '5' nor a percentage like '10%'"
    )


@dataclass(frozen=True)
class CandidateSite:
    """A site in the rollout's selection, as seen by the planner.

    ``held_reason`` is set by the caller only for holds that have not expired (use
    :func:`describe_hold` to format it); ``busy_reason`` is set when the site is a target of
    another running rollout (e.g. ``"in running rollout #12"``).
    """

    slug: str
    canary: bool = False
    held_reason: str | None = None
    busy_reason: str | None = None
    current_image: str | None = None


@dataclass(frozen=True)
class PlannedSite:
    """A site that takes part in the rollout, with the image it ran when planned."""

    slug: str
    canary: bool
    current_image: str | None


@dataclass(frozen=True)
class LeftOut:
    """A selected site that the rollout will not touch, and why (shown in the preview)."""

    slug: str
    reason: str


@dataclass(frozen=True)
class RolloutPlan:
    """The preview of a rollout.

    ``sites`` lists participating sites in rollout order; ``waves`` splits their slugs into
    waves (non-cumulative, wave index 0-based); ``left_out`` is sorted by slug; ``total`` is
    the number of participating sites.
    """

    waves: tuple[tuple[str, ...], ...]
    sites: tuple[PlannedSite, ...]
    left_out: tuple[LeftOut, ...]
    total: int

    def wave_of(self, slug: str) -> int | None:
        """0-based wave index of ``slug``, or None when the site is not in the plan."""
        for index, wave in enumerate(self.waves):
            if slug in wave:
                return index
        return None


def describe_hold(until: date | datetime, reason: str) -> str:
    """Left-out reason for a held site: ``"on hold until 2026-12-01: reason"``.

    Datetimes are shown by their date only; an empty reason leaves out the colon part.
    """
    day = until.date() if isinstance(until, datetime) else until
    reason = reason.strip()
    return (
        f"on hold until {day.isoformat()}: {reason}"
        if reason
        else f"on hold until {day.isoformat()}"
    )


def _left_out_reason(site: CandidateSite, image: str | None) -> str | None:
    if site.held_reason:
        return site.held_reason
    if site.busy_reason:
        return site.busy_reason
    if image is not None and site.current_image == image:
        return f"already on {image}"
    return None


def plan_rollout(
    sites: Sequence[CandidateSite], *, steps: Sequence[WaveStep], image: str | None
) -> RolloutPlan:
    """Build the rollout preview for the selected ``sites``.

    ``image`` is the target image of an upgrade; pass None for rollbacks (each target goes
    back to its own recorded image), which also disables the "already on IMAGE" rule.
    Raises :class:`PlanError` for an empty or duplicate slug.
    """
    seen: set[str] = set()
    included: list[CandidateSite] = []
    left_out: list[LeftOut] = []
    for site in sites:
        if not site.slug:
            raise PlanError("a candidate site has an empty slug")
        if site.slug in seen:
            raise PlanError(f"site {site.slug!r} is selected more than once")
        seen.add(site.slug)
        reason = _left_out_reason(site, image)
        if reason is None:
            included.append(site)
        else:
            left_out.append(LeftOut(slug=site.slug, reason=reason))

    included.sort(key=lambda site: (not site.canary, site.slug))
    left_out.sort(key=lambda item: item.slug)
    ordered = tuple(
        PlannedSite(slug=site.slug, canary=site.canary, current_image=site.current_image)
        for site in included
    )
    waves: list[tuple[str, ...]] = []
    start = 0
    for end in cumulative_sizes(steps, len(ordered)):
        waves.append(tuple(site.slug for site in ordered[start:end]))
        start = end
    return RolloutPlan(
        waves=tuple(waves), sites=ordered, left_out=tuple(left_out), total=len(ordered)
    )
