"""What the rollout page shows, and what its JSON progress endpoint returns.

Read-only (no writes, no network calls) and bounded: a page costs the same few queries whether
the rollout has 5 targets or 5,000. Per wave: its counts (one aggregate for every wave), and
one page of its targets, failed ones first with their reasons (one windowed query for every
wave's page), then a timeline of the rollout's own audit events (one query, the latest
``TIMELINE_LIMIT``). Per-target successes are not in the timeline: thousands of them would bury
what staff need to see (halts, waves, pauses, failures).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import Case, F, IntegerField, Q, Value, When, Window
from django.db.models.functions import RowNumber

from audit.models import AuditEvent
from rollouts.models import Rollout, RolloutTarget
from rollouts.selectors import FAILED_STATUSES, RolloutProgress, WaveProgress, rollout_progress

TARGETS_PER_PAGE = 50
TIMELINE_LIMIT = 50
# Per-target events that are routine; everything else about a rollout is on its timeline.
ROUTINE_TARGET_ACTIONS = ("target.patched", "target.succeeded", "target.reverted")


@dataclass
class WaveSection:
    """One wave on the page: its counts and one page of its targets (failed first)."""

    progress: WaveProgress
    targets: list[RolloutTarget]
    page: int
    pages: int
    current: bool  # the wave the engine is working on

    @property
    def number(self) -> int:
        return self.progress.number

    @property
    def param(self) -> str:
        """The query parameter holding this wave's page number."""
        return f"wave{self.number}"

    @property
    def percent(self) -> int:
        total = self.progress.total
        return round(100 * self.progress.settled / total) if total else 100

    @property
    def failed(self) -> int:
        return self.progress.failed

    @property
    def succeeded_percent(self) -> int:
        total = self.progress.total
        return round(100 * self.progress.count("succeeded") / total) if total else 0

    @property
    def other_settled_percent(self) -> int:
        """Skipped or reverted: settled, but neither on the new image nor failed (grey)."""
        total = self.progress.total
        other = self.progress.settled - self.failed - self.progress.count("succeeded")
        return round(100 * other / total) if total else 0

    @property
    def failed_percent(self) -> int:
        total = self.progress.total
        return round(100 * self.failed / total) if total else 0

    @property
    def first_shown(self) -> int:
        return (self.page - 1) * TARGETS_PER_PAGE + 1 if self.targets else 0

    @property
    def last_shown(self) -> int:
        return self.first_shown + len(self.targets) - 1 if self.targets else 0


@dataclass
class RolloutPage:
    rollout: Rollout
    progress: RolloutProgress
    waves: list[WaveSection]
    timeline: list[AuditEvent]

    @property
    def active(self) -> bool:
        return self.rollout.status in Rollout.ACTIVE_STATUSES

    @property
    def failed(self) -> int:
        return self.progress.failed


def _page_number(value: str | None, pages: int) -> int:
    try:
        number = int(value or 1)
    except ValueError:
        number = 1
    return min(max(number, 1), max(pages, 1))


def wave_pages(
    rollout: Rollout, progress: RolloutProgress, query: Mapping[str, str]
) -> list[WaveSection]:
    """Each wave's page of targets (``query["wave<N>"]``, default 1), in one query.

    Within a wave, failed targets come first, then the rest in rollout order; the row number
    over that order is what a page slices, so paging never loads a whole wave.
    """
    pages: dict[int, tuple[int, int]] = {}
    for wave in progress.waves:
        count = max((wave.total + TARGETS_PER_PAGE - 1) // TARGETS_PER_PAGE, 1)
        pages[wave.number] = (_page_number(query.get(f"wave{wave.number}"), count), count)
    failed_first = Case(
        When(status__in=FAILED_STATUSES, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    window = Q()
    for number, (page, _) in pages.items():
        start = (page - 1) * TARGETS_PER_PAGE
        window |= Q(wave=number - 1, row__gt=start, row__lte=start + TARGETS_PER_PAGE)
    by_wave: dict[int, list[RolloutTarget]] = {}
    if pages:
        targets = (
            RolloutTarget.objects.filter(rollout=rollout)
            .select_related("site")
            .only(
                *("id", "wave", "position", "status", "from_image", "from_revision", "to_image"),
                *("attempts", "last_error", "patched_at", "finished_at", "window_opens_at"),
                *("site__slug", "site__canary", "site__image", "site__maintenance_window"),
            )
            .annotate(
                failed_first=failed_first,
                row=Window(
                    RowNumber(),
                    partition_by=[F("wave")],
                    order_by=[failed_first.asc(), F("position").asc(), F("id").asc()],
                ),
            )
            .filter(window)
            .order_by("wave", "row")
        )
        for target in targets:
            # Before it is patched, a target "comes from" the image its site runs.
            target.shown_from_image = target.from_image or target.site.image
            by_wave.setdefault(target.wave + 1, []).append(target)
    current = rollout.current_wave + 1 if rollout.status in Rollout.ACTIVE_STATUSES else 0
    return [
        WaveSection(
            progress=wave,
            targets=by_wave.get(wave.number, []),
            page=pages[wave.number][0],
            pages=pages[wave.number][1],
            current=wave.number == current,
        )
        for wave in progress.waves
    ]


def rollout_timeline(rollout: Rollout, limit: int = TIMELINE_LIMIT) -> list[AuditEvent]:
    """The rollout's latest audit events, oldest first (routine target successes left out)."""
    events = (
        AuditEvent.objects.filter(rollout=rollout)
        .exclude(action__in=ROUTINE_TARGET_ACTIONS)
        .only("id", "created_at", "actor_label", "action", "subject", "result", "message")
        .order_by("-created_at", "-id")[:limit]
    )
    return list(reversed(events))


def rollout_page(rollout: Rollout, query: Mapping[str, str]) -> RolloutPage:
    progress = rollout_progress(rollout)
    return RolloutPage(
        rollout=rollout,
        progress=progress,
        waves=wave_pages(rollout, progress, query),
        timeline=rollout_timeline(rollout),
    )


def progress_payload(page: RolloutPage) -> dict:
    """The JSON progress endpoint's numbers (the page's script also gets the rendered HTML)."""
    rollout = page.rollout
    return {
        "id": rollout.pk,
        "status": rollout.status,
        "status_message": rollout.status_message,
        "active": page.active,
        "current_wave": rollout.current_wave + 1,
        "wave_count": rollout.wave_count,
        "total": page.progress.total,
        "settled": page.progress.settled,
        "failed": page.failed,
        "percent": page.progress.percent,
        "counts": page.progress.counts,
        "waves": [
            {
                "number": wave.number,
                "total": wave.progress.total,
                "settled": wave.progress.settled,
                "failed": wave.failed,
                "counts": wave.progress.counts,
            }
            for wave in page.waves
        ],
    }
