"""Read-only queries about rollouts (HackSoft "selectors"): no writes, no network calls.

Every function here issues a constant number of queries, whatever the number of targets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from rollouts import clock
from rollouts.bake import BakeClock, format_duration
from rollouts.models import Rollout, RolloutTarget

Status = RolloutTarget.Status

# Target statuses that mean "the engine is finished with this target" for progress bars.
SETTLED_STATUSES = (
    Status.SUCCEEDED,
    Status.FAILED,
    Status.SKIPPED,
    Status.REVERTED,
    Status.REVERT_FAILED,
)


def fleet_image() -> str:
    """The image a newly deployed site should run.

    The target image of the fleet's last succeeded whole-fleet upgrade that has not since been
    rolled back by a succeeded rollback; else ``settings.SITE_IMAGE``. A running, paused or
    halted upgrade is never taken into account, so a new site never gets an image mid-test.
    """
    rollout = (
        Rollout.objects.filter(
            kind=Rollout.Kind.UPGRADE,
            selection=Rollout.Selection.ALL,
            status=Rollout.Status.SUCCEEDED,
        )
        .exclude(rollbacks__status=Rollout.Status.SUCCEEDED)
        .exclude(image="")
        .order_by("-finished_at", "-id")
        .only("image")
        .first()
    )
    return rollout.image if rollout is not None else settings.SITE_IMAGE


def active_rollout_for_site(site_id: int) -> Rollout | None:
    """The running, paused or reverting rollout that has ``site_id`` as a target, if any."""
    return (
        Rollout.objects.filter(status__in=Rollout.ACTIVE_STATUSES, targets__site_id=site_id)
        .order_by("-id")
        .first()
    )


def busy_sites(
    site_ids: Iterable[int] | None = None, *, exclude_rollout_id: int | None = None
) -> dict[int, int]:
    """``{site_id: rollout_id}`` for sites that are targets of an active rollout (one query)."""
    queryset = RolloutTarget.objects.filter(rollout__status__in=Rollout.ACTIVE_STATUSES)
    if site_ids is not None:
        queryset = queryset.filter(site_id__in=list(site_ids))
    if exclude_rollout_id is not None:
        queryset = queryset.exclude(rollout_id=exclude_rollout_id)
    return dict(queryset.values_list("site_id", "rollout_id"))


class _StatusCounts:
    """Derived numbers over ``counts`` (``{status: count}``), set by the dataclasses below."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def settled(self) -> int:
        return sum(self.counts.get(status, 0) for status in SETTLED_STATUSES)

    @property
    def failed(self) -> int:
        """Failed forward or failed to revert (``FAILED_STATUSES``)."""
        return sum(self.counts.get(status, 0) for status in FAILED_STATUSES)

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)


@dataclass
class WaveProgress(_StatusCounts):
    """Counts of targets by status in one wave (``number`` is 1-based for display)."""

    number: int
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class RolloutProgress(_StatusCounts):
    """Counts of a rollout's targets by status, overall and per wave."""

    waves: list[WaveProgress]
    counts: dict[str, int]

    @property
    def percent(self) -> int:
        return round(100 * self.settled / self.total) if self.total else 100


def rollout_progress(rollout: Rollout) -> RolloutProgress:
    """Per-wave and overall target counts by status, in one query."""
    rows = (
        RolloutTarget.objects.filter(rollout=rollout)
        .values_list("wave", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_wave: dict[int, dict[str, int]] = defaultdict(dict)
    totals: dict[str, int] = defaultdict(int)
    for wave, status, n in rows:
        per_wave[wave][status] = n
        totals[status] += n
    count = max(rollout.wave_count, (max(per_wave) + 1) if per_wave else 0)
    waves = [WaveProgress(number=i + 1, counts=per_wave.get(i, {})) for i in range(count)]
    return RolloutProgress(waves=waves, counts=dict(totals))


def progress_by_rollout(rollout_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """``{rollout_id: {status: count}}`` for a page of rollouts, in one query."""
    result: dict[int, dict[str, int]] = defaultdict(dict)
    rows = (
        RolloutTarget.objects.filter(rollout_id__in=list(rollout_ids))
        .values_list("rollout_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for rollout_id, status, n in rows:
        result[rollout_id][status] = n
    return dict(result)


DONE_STATUSES = ("succeeded", "skipped", "reverted")
FAILED_STATUSES = ("failed", "revert_failed")


def with_target_counts(rollouts: QuerySet[Rollout]) -> QuerySet[Rollout]:
    """Annotate ``n_total``, ``n_done`` and ``n_failed`` (one aggregate query for a page)."""
    return rollouts.annotate(
        n_total=Count("targets"),
        n_done=Count("targets", filter=Q(targets__status__in=DONE_STATUSES)),
        n_failed=Count("targets", filter=Q(targets__status__in=FAILED_STATUSES)),
    )


@dataclass(frozen=True)
class WaveBake:
    """The current wave's bake for display: ``wave`` is 1-based; ``left`` is None until the
    wave is settled and healthy (the bake has not started)."""

    wave: int
    seconds: int
    left: timedelta | None

    @property
    def countdown(self) -> str:
        if self.left is None:
            return f"a {self.seconds}s bake starts once the wave is healthy"
        return f"baking: {format_duration(self.left)} left of {self.seconds}s"


def wave_bake(rollout: Rollout, *, now: datetime | None = None) -> WaveBake | None:
    """The running rollout's current-wave bake (None without a bake or when not running)."""
    if not rollout.bake_seconds or rollout.status not in (
        Rollout.Status.RUNNING,
        Rollout.Status.PAUSED,
    ):
        return None
    since = rollout.bake_started_at
    if since is not None and rollout.wave_started_at is not None:
        since = max(since, rollout.wave_started_at)
    left = BakeClock(rollout.bake_seconds, since).remaining(now or clock.now())
    return WaveBake(rollout.current_wave + 1, rollout.bake_seconds, left)


def rollout_targets(rollout: Rollout):
    """The rollout's targets in rollout order with their site slugs (one query)."""
    return (
        RolloutTarget.objects.filter(rollout=rollout)
        .select_related("site")
        .only(
            "id",
            "wave",
            "position",
            "status",
            "from_image",
            "from_revision",
            "to_image",
            "generation",
            "attempts",
            "last_error",
            "patched_at",
            "finished_at",
            "window_opens_at",
            "site__slug",
            "site__canary",
            "site__maintenance_window",
        )
        .order_by("wave", "position")
    )


def previous_images(site_ids: Iterable[int]) -> dict[int, str]:
    """``{site_id: image}``: the image each site ran before its last upgrade (one query).

    History is the ``from_image`` (read from the cluster at patch time) of the site's latest
    succeeded or failed target of an *upgrade* rollout. Rollback rollouts are not "changes" in
    this sense, which is what makes rolling back twice a no-op rather than a flip: after a
    rollback the site already runs that image and is left out.
    """
    rows = (
        RolloutTarget.objects.filter(
            site_id__in=list(site_ids),
            rollout__kind=Rollout.Kind.UPGRADE,
            status__in=(Status.SUCCEEDED, Status.FAILED),
            generation__isnull=False,
        )
        .exclude(from_image="")
        .order_by("site_id", "-id")
        .values_list("site_id", "from_image")
    )
    result: dict[int, str] = {}
    for site_id, image in rows:
        result.setdefault(site_id, image)
    return result
