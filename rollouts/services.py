"""Rollout operations: plan, create, start, pause, resume, cancel, skip, roll back.

Invariants (DESIGN.md, Layering):
- Every function takes keyword-only arguments and is the only writer of the state it changes.
- Status changes are compare-and-swap: ``filter(pk=..., status=old).update(...)``; the service
  acts (and audits) only when exactly one row changed, so a double click or a job that runs
  twice cannot do anything twice.
- The AuditEvent is written in the same transaction as the change; the engine job is enqueued
  with ``transaction.on_commit`` so it never sees uncommitted state.
- No Kubernetes call happens here, except :func:`rollout_dry_run`, the explicit server-side
  dry-run patch the preview page asks for (never inside a transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

import audit
from rollouts import clock, selectors
from rollouts.models import Rollout, RolloutTarget
from rollouts.planner import (
    CandidateSite,
    FailureBudget,
    LeftOut,
    PlanError,
    RolloutPlan,
    WaveStep,
    describe_hold,
    format_waves,
    parse_failure_budget,
    parse_waves,
    plan_rollout,
)
from rollouts.window_gate import WaveWindows, summarise
from sites.models import Site
from subscribie_admin.bulk_insert import insert_rows, new_row

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from cluster.gateway import Cluster

    Actor = AbstractBaseUser | str | None

__all__ = [
    "PlanError",
    "RolloutError",
    "RolloutPreview",
    "rollout_cancel",
    "rollout_create",
    "rollout_dry_run",
    "rollout_pause",
    "rollout_plan",
    "rollout_resume",
    "rollout_rollback",
    "rollout_rollback_plan",
    "rollout_skip_target",
    "rollout_start",
    "sites_rollback",
    "sites_rollback_plan",
]

# The strategy a rollout gets unless told otherwise (services, admin form and commands).
DEFAULT_WAVES = "1,10%,50%,100%"
DEFAULT_MAX_FAILURES = "0"
DEFAULT_WAVE_TIMEOUT = 900  # seconds
DEFAULT_BAKE = 0  # seconds a healthy wave must stay healthy before the next wave starts
# Sites in these statuses have a Deployment the engine can patch.
PATCHABLE_SITE_STATUSES = (Site.Status.LIVE, Site.Status.FAILED)


class RolloutError(Exception):
    """A rollout operation that cannot be done in the rollout's current state."""


@dataclass(frozen=True)
class RolloutPreview:
    """What a rollout would do: waves of slugs, left-out sites with reasons, parsed gates.

    ``to_images`` is set for rollbacks (each site back to its own image). ``wave_windows``
    says per wave how many sites are inside their maintenance window at ``planned_at`` and
    when the rest open (enforced only with ``respect_windows``).
    """

    plan: RolloutPlan
    steps: tuple[WaveStep, ...]
    budget: FailureBudget
    image: str
    left_out: tuple[LeftOut, ...]
    site_ids: dict[str, int]
    to_images: dict[str, str] = field(default_factory=dict)
    bake_seconds: int = DEFAULT_BAKE
    respect_windows: bool = False
    wave_windows: tuple[WaveWindows, ...] = ()
    planned_at: datetime | None = None

    @property
    def waves(self) -> tuple[tuple[str, ...], ...]:
        return self.plan.waves

    @property
    def total(self) -> int:
        return self.plan.total

    @property
    def allowed_failures(self) -> int:
        return self.budget.allowed(self.plan.total)

    def image_for(self, slug: str) -> str:
        """The image the rollout would give ``slug``: its own for rollbacks, else ``image``."""
        return self.to_images.get(slug, self.image)


def _policy(
    *, plan: RolloutPlan, sites: Iterable[Site], bake: int, respect_windows: bool
) -> dict[str, Any]:
    """The bake and window fields of a preview (``PlanError`` for a negative bake)."""
    if isinstance(bake, bool) or not isinstance(bake, int) or bake < 0:
        raise PlanError("the bake time must be a whole number of seconds, 0 or more")
    now = clock.now()
    windows = {site.slug: site.maintenance_window for site in sites}
    return {
        "bake_seconds": bake,
        "respect_windows": respect_windows,
        "wave_windows": tuple(
            summarise((windows.get(slug, "") for slug in wave), now=now) for wave in plan.waves
        ),
        "planned_at": now,
    }


def _enqueue_tick(rollout_id: int) -> None:
    """Enqueue one engine job after commit (so the job reads committed state)."""

    def enqueue() -> None:
        from django_q.tasks import async_task

        async_task("rollouts.tasks.tick_rollout", rollout_id, task_name=f"rollout-{rollout_id}")

    transaction.on_commit(enqueue)


def _candidates(
    sites: Iterable[Site], *, current: dict[int, str] | None = None
) -> tuple[list[CandidateSite], list[LeftOut], dict[str, int]]:
    """Planner candidates for ``sites`` (one query for busy sites), plus non-patchable ones."""
    sites = list(sites)
    now = timezone.now()
    busy = selectors.busy_sites(site.pk for site in sites)
    candidates: list[CandidateSite] = []
    left_out: list[LeftOut] = []
    ids: dict[str, int] = {}
    for site in sites:
        ids[site.slug] = site.pk
        if site.status not in PATCHABLE_SITE_STATUSES:
            left_out.append(LeftOut(site.slug, f"site is {site.get_status_display()}"))
            continue
        held = None
        if site.on_hold(now):
            held = (
                describe_hold(site.hold_until, site.hold_reason)
                if site.hold_until
                else f"on hold: {site.hold_reason}"
            )
        rollout_id = busy.get(site.pk)
        candidates.append(
            CandidateSite(
                slug=site.slug,
                canary=site.canary,
                held_reason=held,
                busy_reason=f"in running rollout #{rollout_id}" if rollout_id else None,
                current_image=(current or {}).get(site.pk, site.image),
            )
        )
    return candidates, left_out, ids


def rollout_plan(
    *,
    sites: Iterable[Site],
    image: str,
    waves: str = DEFAULT_WAVES,
    max_failures: str | int = DEFAULT_MAX_FAILURES,
    bake: int = DEFAULT_BAKE,
    respect_windows: bool = False,
) -> RolloutPreview:
    """Preview an upgrade of ``sites`` to ``image``: waves, left-out sites and reasons, and
    per wave the sites inside their maintenance window now.

    Raises :class:`PlanError` (user-facing message) for a bad strategy, budget, bake or image.
    Reads the database only.
    """
    sites = list(sites)
    image = (image or "").strip()
    if not image or any(ch.isspace() for ch in image):
        raise PlanError("the image must be a non-empty reference such as subscribie/subscribie:v2")
    steps = parse_waves(waves)
    budget = parse_failure_budget(max_failures)
    candidates, not_patchable, ids = _candidates(sites)
    plan = plan_rollout(candidates, steps=steps, image=image)
    left_out = tuple(sorted((*plan.left_out, *not_patchable), key=lambda item: item.slug))
    return RolloutPreview(
        plan=plan, steps=steps, budget=budget, image=image, left_out=left_out, site_ids=ids,
        **_policy(plan=plan, sites=sites, bake=bake, respect_windows=respect_windows),
    )  # fmt: skip


def _rollback_preview(
    *, sites: Sequence[Site], to_images: dict[int, str], waves: str, max_failures: str | int,
    bake: int = DEFAULT_BAKE, respect_windows: bool = False,
) -> RolloutPreview:  # fmt: skip
    """Preview a rollback: each site back to ``to_images[site.pk]``; no history -> left out."""
    steps = parse_waves(waves)
    budget = parse_failure_budget(max_failures)
    with_history = [site for site in sites if site.pk in to_images]
    no_history = [
        LeftOut(site.slug, "no earlier image recorded")
        for site in sites
        if site.pk not in to_images
    ]
    candidates, not_patchable, ids = _candidates(with_history)
    # Already on the image it would go back to: rolling back again must be a no-op, not a flip.
    already = []
    kept = []
    by_slug = {site.slug: site for site in with_history}
    for candidate in candidates:
        site = by_slug[candidate.slug]
        target = to_images[site.pk]
        if not candidate.held_reason and not candidate.busy_reason and site.image == target:
            already.append(LeftOut(site.slug, f"already on {target}"))
        else:
            kept.append(candidate)
    plan = plan_rollout(kept, steps=steps, image=None)
    left_out = tuple(
        sorted((*plan.left_out, *not_patchable, *no_history, *already), key=lambda i: i.slug)
    )
    return RolloutPreview(
        plan=plan,
        steps=steps,
        budget=budget,
        image="",
        left_out=left_out,
        site_ids=ids,
        to_images={site.slug: to_images[site.pk] for site in with_history},
        **_policy(plan=plan, sites=with_history, bake=bake, respect_windows=respect_windows),
    )


def _create_from_preview(
    *,
    preview: RolloutPreview,
    kind: str,
    wave_timeout: int,
    auto_revert: bool,
    actor: Actor,
    selection: str,
    parent: Rollout | None = None,
    start: bool = False,
    enqueue: bool = True,
    start_at: datetime | None = None,
) -> Rollout:
    """Insert a draft Rollout and its targets (one bulk insert) and audit it.

    ``start``: start it in the same transaction (see :func:`rollout_start` for ``enqueue``).
    ``start_at``: the every-minute schedule starts it then (rollouts/approvals.py). Whether it
    needs approval is decided here, from the plan (``approvals.approval_needed``).
    """
    from rollouts import approvals

    if wave_timeout < 1:
        raise PlanError("the wave deadline must be at least 1 second")
    now = timezone.now()
    if start_at is not None:
        if timezone.is_naive(start_at):
            raise PlanError("the start time needs a time zone, e.g. 2026-12-24T02:00+00:00")
        if start_at <= now:
            raise PlanError(f"the start time {start_at.isoformat()} is not in the future")
    user = None if actor is None or isinstance(actor, str) else actor
    with transaction.atomic():
        rollout = Rollout.objects.create(
            start_at=start_at,
            **approvals.approval_fields(
                kind=kind,
                whole_fleet=selection == Rollout.Selection.ALL,
                targets=preview.total,
                now=now,
            ),
            kind=kind,
            image=preview.image,
            selection=selection,
            waves=format_waves(preview.steps),
            max_failures=str(preview.budget),
            wave_timeout_seconds=wave_timeout,
            auto_revert=auto_revert,
            bake_seconds=preview.bake_seconds,
            respect_windows=preview.respect_windows,
            wave_count=len(preview.waves),
            left_out=[{"slug": item.slug, "reason": item.reason} for item in preview.left_out],
            parent=parent,
            created_by=user,
            actor_label=audit.actor_label_for(actor),
        )
        targets = []
        position = 0
        for wave_index, slugs in enumerate(preview.waves):
            for slug in slugs:
                targets.append(
                    new_row(
                        RolloutTarget,
                        rollout_id=rollout.pk,
                        site_id=preview.site_ids[slug],
                        wave=wave_index,
                        position=position,
                        to_image=preview.image_for(slug),
                    )
                )
                position += 1
        insert_rows(RolloutTarget, targets)
        audit.record(
            action="rollout.create",
            actor=actor,
            rollout=rollout,
            data={
                "kind": kind,
                "image": preview.image,
                "selection": selection,
                "waves": rollout.waves,
                "wave_sizes": [len(w) for w in preview.waves],
                "max_failures": rollout.max_failures,
                "wave_timeout_seconds": wave_timeout,
                "auto_revert": auto_revert,
                "bake_seconds": preview.bake_seconds,
                "respect_windows": preview.respect_windows,
                "targets": len(targets),
                "left_out": len(preview.left_out),
                "parent": parent.pk if parent else None,
                "approval_required": rollout.approval_required,
                "start_at": start_at.isoformat() if start_at else None,
            },
        )
        approvals.rollout_created(rollout=rollout)
        if start:
            rollout_start(rollout=rollout, actor=actor, enqueue=enqueue)
    return rollout


def rollout_create(
    *,
    sites: Iterable[Site],
    image: str,
    waves: str = DEFAULT_WAVES,
    max_failures: str | int = DEFAULT_MAX_FAILURES,
    wave_timeout: int = DEFAULT_WAVE_TIMEOUT,
    auto_revert: bool = True,
    bake: int = DEFAULT_BAKE,
    respect_windows: bool = False,
    actor: Actor,
    whole_fleet: bool = False,
    start_at: datetime | None = None,
) -> Rollout:
    """Create a draft upgrade of ``sites`` to ``image`` with one pending target per site.

    Left-out sites (hold, busy, already on the image, not live) are stored with reasons.
    ``whole_fleet`` marks the selection as the whole fleet (see ``selectors.fleet_image``).
    A whole-fleet or large upgrade needs approval before it can start (``approval_required``);
    with ``start_at`` the schedule starts it then (rollouts/approvals.py).
    ``bake``: seconds each healthy wave must stay healthy before the next starts;
    ``respect_windows``: patch each site only inside its maintenance window.
    """
    preview = rollout_plan(
        sites=sites, image=image, waves=waves, max_failures=max_failures, bake=bake,
        respect_windows=respect_windows,
    )  # fmt: skip
    return _create_from_preview(
        preview=preview,
        kind=Rollout.Kind.UPGRADE,
        wave_timeout=wave_timeout,
        auto_revert=auto_revert,
        actor=actor,
        selection=Rollout.Selection.ALL if whole_fleet else Rollout.Selection.SELECTED,
        start_at=start_at,
    )


def _transition(
    rollout: Rollout, *, old: Sequence[str], new: str, refused: str = "", **fields: Any
) -> str | None:
    """CAS ``rollout`` from one of ``old`` to ``new``; returns the old status, or None.

    With ``refused``, a transition that did not happen raises RolloutError instead
    ("rollout #<pk> <refused>"), so the caller writes nothing after it.
    """
    current = Rollout.objects.filter(pk=rollout.pk).values_list("status", flat=True).first()
    changed = current in old and (
        Rollout.objects.filter(pk=rollout.pk, status=current).update(status=new, **fields) == 1
    )
    if not changed:
        if refused:
            raise RolloutError(f"rollout #{rollout.pk} {refused}")
        return None
    rollout.status = new
    for name, value in fields.items():
        setattr(rollout, name, value)
    return current


def rollout_start(*, rollout: Rollout, actor: Actor, enqueue: bool = True) -> Rollout:
    """Start a draft rollout: draft -> running (or straight to succeeded with no targets).

    Targets whose site became busy in another active rollout since planning are skipped with
    that reason. ``enqueue=False`` leaves the ticking to the caller (``--sync``).
    A rollout that needs approval and has none is refused (RolloutError), whoever asks.
    """
    from rollouts import approvals

    now = clock.now()
    with transaction.atomic():
        rollout.refresh_from_db(fields=["approval_required", "approved_at"])
        approvals.check_can_start(rollout)
        _transition(
            rollout,
            old=[Rollout.Status.DRAFT],
            new=Rollout.Status.RUNNING,
            refused="is not a draft; it was not started",
            started_at=now,
            wave_started_at=now,
            last_progress_at=now,
            current_wave=0,
        )
        busy = selectors.busy_sites(
            rollout.targets.values_list("site_id", flat=True), exclude_rollout_id=rollout.pk
        )
        for site_id, other in busy.items():
            RolloutTarget.objects.filter(
                rollout=rollout, site_id=site_id, status=RolloutTarget.Status.PENDING
            ).update(
                status=RolloutTarget.Status.SKIPPED,
                last_error=f"in running rollout #{other}",
                finished_at=now,
            )
        audit.record(
            action="rollout.start",
            actor=actor,
            rollout=rollout,
            data={"image": rollout.image, "kind": rollout.kind, "skipped_busy": len(busy)},
        )
        has_work = rollout.targets.filter(status=RolloutTarget.Status.PENDING).exists()
        if not has_work:
            _transition(
                rollout,
                old=[Rollout.Status.RUNNING],
                new=Rollout.Status.SUCCEEDED,
                finished_at=now,
                status_message="nothing to do: every selected site was left out",
            )
            audit.record(
                action="rollout.succeed",
                actor=actor,
                rollout=rollout,
                message=rollout.status_message,
            )
        elif enqueue:
            _enqueue_tick(rollout.pk)
    return rollout


def rollout_pause(*, rollout: Rollout, actor: Actor) -> Rollout:
    """running -> paused. In-flight patches finish; nothing more is patched until resumed."""
    with transaction.atomic():
        _transition(
            rollout,
            old=[Rollout.Status.RUNNING],
            new=Rollout.Status.PAUSED,
            refused="is not running; it was not paused",
        )
        audit.record(action="rollout.pause", actor=actor, rollout=rollout)
    return rollout


def rollout_resume(*, rollout: Rollout, actor: Actor, enqueue: bool = True) -> Rollout:
    """paused -> running. The current wave gets a fresh deadline (time paused is not counted)."""
    now = clock.now()
    with transaction.atomic():
        _transition(
            rollout,
            old=[Rollout.Status.PAUSED],
            new=Rollout.Status.RUNNING,
            refused="is not paused; it was not resumed",
            wave_started_at=now,
            last_progress_at=now,
        )
        audit.record(action="rollout.resume", actor=actor, rollout=rollout)
        if enqueue:
            _enqueue_tick(rollout.pk)
    return rollout


def skip_unpatched_targets(rollout: Rollout, *, why: str, now: datetime) -> int:
    """Targets of ``rollout`` not patched yet (pending, waiting for a window) -> skipped with
    ``why``; returns how many. For a rollout that stops before reaching them."""
    return RolloutTarget.objects.filter(
        rollout=rollout, status__in=RolloutTarget.UNPATCHED_STATUSES
    ).update(status=RolloutTarget.Status.SKIPPED, last_error=why, finished_at=now)


def rollout_cancel(
    *, rollout: Rollout, actor: Actor, revert: bool = False, enqueue: bool = True
) -> Rollout:
    """Stop a draft, running or paused rollout. Pending targets become skipped.

    Without ``revert`` the sites already changed stay as they are (status cancelled); with it
    the rollout goes to reverting and the engine puts every changed site back to its
    ``from_image``, wave by wave.
    """
    now = clock.now()
    new = Rollout.Status.REVERTING if revert else Rollout.Status.CANCELLED
    fields: dict[str, Any] = {"status_message": "cancelled", "last_progress_at": now}
    if not revert:
        fields["finished_at"] = now
    else:
        fields["wave_started_at"] = None
    with transaction.atomic():
        old = _transition(
            rollout,
            old=[Rollout.Status.DRAFT, Rollout.Status.RUNNING, Rollout.Status.PAUSED],
            new=new,
            refused="is already finished; it was not cancelled",
            **fields,
        )
        skipped = skip_unpatched_targets(rollout, why="rollout cancelled", now=now)
        audit.record(
            action="rollout.cancel",
            actor=actor,
            rollout=rollout,
            data={"from_status": old, "revert": revert, "skipped": skipped},
        )
        if revert:
            audit.record(action="rollout.revert", actor=actor, rollout=rollout)
            if enqueue:
                _enqueue_tick(rollout.pk)
        elif enqueue and rollout.targets.filter(status=RolloutTarget.Status.PATCHING).exists():
            # Claimed mid-wave: a live tick records them itself when it sees the cancel; if
            # the tick died, this job (or the schedule, once the lease lapses) settles them.
            _enqueue_tick(rollout.pk)
    return rollout


def rollout_skip_target(*, target: RolloutTarget, actor: Actor) -> RolloutTarget:
    """Skip one site: a pending (or waiting_window) target is never patched; a waiting one is
    no longer awaited.

    A skipped target neither counts as a failure nor blocks its wave.
    """
    now = clock.now()
    with transaction.atomic():
        for old in (*RolloutTarget.UNPATCHED_STATUSES, RolloutTarget.Status.WAITING):
            changed = RolloutTarget.objects.filter(pk=target.pk, status=old).update(
                status=RolloutTarget.Status.SKIPPED, finished_at=now, last_error="skipped by staff"
            )
            if changed:
                break
        else:
            raise RolloutError(f"target {target.pk} is neither pending nor waiting; not skipped")
        target.refresh_from_db()
        audit.record(
            action="target.skipped",
            actor=actor,
            site=target.site,
            rollout=target.rollout,
            data={"from_status": old, "to_image": target.to_image},
        )
    return target


def rollout_rollback_plan(*, rollout: Rollout) -> RolloutPreview:
    """Preview of :func:`rollout_rollback`: every site ``rollout`` changed, each back to its own
    ``from_image``, in the rollout's waves (database reads only).

    Raises :class:`RolloutError` while ``rollout`` is a draft or still active.
    """
    if rollout.status in (Rollout.Status.DRAFT, *Rollout.ACTIVE_STATUSES):
        raise RolloutError(
            f"rollout #{rollout.pk} is {rollout.status}; pause and cancel it before rolling back"
        )
    changed = (
        RolloutTarget.objects.filter(
            rollout=rollout,
            status__in=(
                RolloutTarget.Status.SUCCEEDED,
                RolloutTarget.Status.FAILED,
                RolloutTarget.Status.WAITING,
                RolloutTarget.Status.REVERT_FAILED,
            ),
            generation__isnull=False,
        )
        .exclude(from_image="")
        .select_related("site")
    )
    to_images = {target.site_id: target.from_image for target in changed}
    sites = [target.site for target in changed]
    return _rollback_preview(
        sites=sites, to_images=to_images, waves=rollout.waves, max_failures=rollout.max_failures,
        bake=rollout.bake_seconds, respect_windows=rollout.respect_windows,
    )  # fmt: skip


def rollout_rollback(
    *, rollout: Rollout, actor: Actor, start: bool = True, enqueue: bool = True
) -> Rollout:
    """Roll back ``rollout``: a new Rollout (kind rollback, parent=rollout) in which every site
    it changed goes back to its own ``from_image``, with the same waves and gates.

    Sites already on that image are left out, so rolling back twice is a no-op. The plan is
    :func:`rollout_rollback_plan`, made again here (what the preview showed may have moved).
    """
    preview = rollout_rollback_plan(rollout=rollout)
    return _create_from_preview(
        preview=preview,
        kind=Rollout.Kind.ROLLBACK,
        wave_timeout=rollout.wave_timeout_seconds,
        auto_revert=rollout.auto_revert,
        actor=actor,
        selection=rollout.selection,
        parent=rollout,
        start=start,
        enqueue=enqueue,
    )


def sites_rollback(
    *,
    sites: Iterable[Site],
    actor: Actor,
    waves: str = DEFAULT_WAVES,
    max_failures: str | int = DEFAULT_MAX_FAILURES,
    wave_timeout: int = DEFAULT_WAVE_TIMEOUT,
    auto_revert: bool = True,
    bake: int = DEFAULT_BAKE,
    respect_windows: bool = False,
    start: bool = True,
    enqueue: bool = True,
) -> Rollout:
    """Roll back selected sites, each to the image it ran before its last upgrade (history).

    See ``selectors.previous_images``: sites already on that image are left out, so a second
    rollback is a no-op; sites without history are left out with that reason.
    """
    sites = list(sites)
    preview = sites_rollback_plan(
        sites=sites, waves=waves, max_failures=max_failures, bake=bake,
        respect_windows=respect_windows,
    )  # fmt: skip
    return _create_from_preview(
        preview=preview,
        kind=Rollout.Kind.ROLLBACK,
        wave_timeout=wave_timeout,
        auto_revert=auto_revert,
        actor=actor,
        selection=Rollout.Selection.SELECTED,
        start=start,
        enqueue=enqueue,
    )


def sites_rollback_plan(
    *,
    sites: Iterable[Site],
    waves: str = DEFAULT_WAVES,
    max_failures: str | int = DEFAULT_MAX_FAILURES,
    bake: int = DEFAULT_BAKE,
    respect_windows: bool = False,
) -> RolloutPreview:
    """Preview of :func:`sites_rollback` (database reads only)."""
    sites = list(sites)
    to_images = selectors.previous_images(site.pk for site in sites)
    return _rollback_preview(
        sites=sites, to_images=to_images, waves=waves, max_failures=max_failures, bake=bake,
        respect_windows=respect_windows,
    )  # fmt: skip


@dataclass(frozen=True)
class DryRunResult:
    slug: str
    ok: bool
    message: str


def rollout_dry_run(
    *, preview: RolloutPreview, limit: int, cluster: Cluster | None = None
) -> list[DryRunResult]:
    """Server-side dry-run patch (``dryRun=All``) of the first wave of ``preview`` (at most
    ``limit`` sites), each to the image the rollout would give it: nothing changes.

    One mechanism for upgrades (every site to ``preview.image``) and rollbacks (each site to
    its own image). This is the one Kubernetes call an admin request makes, on purpose: the
    preview page shows whether the API server would accept the patch. Must not run inside a
    transaction.
    """
    from concurrent.futures import ThreadPoolExecutor

    from django.conf import settings

    from cluster.gateway import Cluster, ClusterError

    slugs = list(preview.waves[0][:limit]) if preview.waves else []
    if not slugs:
        return []
    cluster = cluster or Cluster.from_settings()

    def one(slug: str) -> DryRunResult:
        try:
            snap = cluster.set_image(
                slug, preview.image_for(slug), change_cause="dry run", dry_run=True
            )
        except ClusterError as exc:
            return DryRunResult(slug, False, str(exc))
        return DryRunResult(slug, True, f"would run {snap.image} (generation {snap.generation})")

    with ThreadPoolExecutor(max_workers=max(1, settings.KUBE_CONCURRENCY)) as pool:
        return list(pool.map(one, slugs))


def rollouts_needing_tick() -> list[int]:
    """Rollouts whose engine lease has expired (no live job chain) that still need the engine:
    running or reverting ones, and finished ones with targets a dead tick left claimed
    (``patching``), which the engine settles from what the cluster runs."""
    from django.db.models import Q

    now = timezone.now()
    unsettled = Q(
        status__in=Rollout.FINISHED_STATUSES,
        targets__status=RolloutTarget.Status.PATCHING,
    )
    return list(
        Rollout.objects.filter(Q(status__in=Rollout.TICKING_STATUSES) | unsettled)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("id")
        .values_list("id", flat=True)
        .distinct()
    )


def rollout_reap_stale(*, now: datetime | None = None) -> list[int]:
    """Halt running rollouts that made no progress for a whole wave deadline plus a grace.

    The engine itself fails targets at the wave deadline, so a rollout that has not moved for
    longer than that has lost its engine (or is stuck in a way staff must look at). Returns
    the ids halted. CAS on status and on ``last_progress_at``, so a rollout that moves while
    we look is left alone.
    """
    from django.conf import settings

    from rollouts import notices as rollout_notices

    now = now or clock.now()
    grace = timedelta(seconds=int(getattr(settings, "ROLLOUT_STALE_GRACE_SECONDS", 300)))
    halted: list[int] = []
    candidates = Rollout.objects.filter(status=Rollout.Status.RUNNING).only(
        "id", "last_progress_at", "started_at", "wave_timeout_seconds", "current_wave"
    )
    for rollout in candidates:
        last = rollout.last_progress_at or rollout.started_at
        if last is None or now - last <= timedelta(seconds=rollout.wave_timeout_seconds) + grace:
            continue
        idle = int((now - last).total_seconds())
        message = (
            f"stalled: no progress for {idle}s in wave {rollout.current_wave + 1}, past the "
            f"{rollout.wave_timeout_seconds}s wave deadline; halted by the reaper"
        )
        with transaction.atomic():
            changed = Rollout.objects.filter(
                pk=rollout.pk,
                status=Rollout.Status.RUNNING,
                last_progress_at=rollout.last_progress_at,
            ).update(status=Rollout.Status.HALTED, status_message=message, finished_at=now)
            if changed:
                audit.record(
                    action="rollout.halt",
                    actor="system:reaper",
                    rollout=rollout,
                    ok=False,
                    message=message,
                    data={"idle_seconds": idle},
                )
                rollout_notices.rollout_halted(rollout=rollout)
                halted.append(rollout.pk)
    return halted
