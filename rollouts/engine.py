"""The rollout engine: one bounded, idempotent tick of a rollout's state machine.

A tick does a bounded amount of work on one rollout and returns:

running  with "respect windows", first hold the wave's unpatched targets whose site is outside
         its maintenance window (pending -> waiting_window) and release those whose window
         opened (-> pending; the wave deadline restarts at the opening; rollouts/window_gate.py);
         claim up to ``ROLLOUT_TICK_BATCH`` pending targets of the current wave
         (pending -> patching, one compare-and-swap UPDATE with a claim token), read the wave
         with ONE list (``from_image``/``from_revision`` come from the cluster, stored before
         the patch), patch images with a thread pool bounded by ``KUBE_CONCURRENCY`` (the
         gateway rate-limits), store the returned generation (-> waiting); then read the whole
         wave's status with ONE list and mark targets succeeded / failed; when the wave is
         settled, bake it (``bake_seconds``; rollouts/bake.py): each tick reads its succeeded
         sites with ONE list and fails any that became unavailable; then either start the next
         wave, finish (succeeded) or halt (failure budget exceeded) and, with auto-revert, go
         to reverting. Time is read from ``rollouts.clock`` (tests set it).
paused   only observe the wave (no patch, no deadline, no advance).
reverting  wave by wave from the highest: every target this rollout changed goes back to its
         recorded ``from_image`` (never a relative ``rollout undo``); then reverted.

Both directions patch, observe and settle a wave with the same code, described by a
``_Direction`` (FORWARD, REVERT): the statuses, the image field, the generation field.

Invariants:
- Resumable from the database alone. Ticks of one rollout are serialised by a lease on the
  Rollout row (CAS), so a target found in ``patching`` when a tick holds the lease was left by
  a crashed tick: it is checked against the cluster (already on ``to_image`` -> waiting with
  the current generation) instead of being patched blindly.
- No network call happens inside a database transaction: reads and patches happen first,
  then one short transaction writes the outcome with its audit rows.
- Every target status change is a CAS on its previous status and is audited.
- A transient API error on a patch (throttling, 5xx, no answer) fails no site: the target is
  patched again by a later tick (``target.retry``) until the wave deadline passes.
- A tick's lease is renewed while it runs, however long API retries make it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone

import audit
from cluster.gateway import Cluster, ClusterError
from cluster.status import DeploymentSnapshot
from cluster.watch import SiteWatch
from rollouts import clock, notices
from rollouts.bake import BakeClock, unavailable_reason
from rollouts.models import Rollout, RolloutTarget
from rollouts.planner import parse_failure_budget
from rollouts.window_gate import gate
from sites.models import Site

logger = logging.getLogger(__name__)

# How often a rollout that waits on purpose (bake, maintenance windows) records that it is alive.
_WAITING_TOUCH = timedelta(seconds=30)
# Most ids in one grouped CAS UPDATE (keeps ``IN (...)`` under SQLite's parameter limits).
_CAS_CHUNK = 500


def _target_fields() -> list[str]:
    """A target's own fields plus its site's slug: all a tick reads of the joined site."""
    return [f.name for f in RolloutTarget._meta.concrete_fields] + ["site__slug"]


class _PartialCAS(Exception):
    """A grouped CAS UPDATE matched fewer rows than targets: redo it target by target."""


ENGINE_ACTOR = "system:rollouts"
TStatus = RolloutTarget.Status
RStatus = Rollout.Status


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def tick_batch() -> int:
    """Most targets one tick claims (bounds a tick's duration and transaction size)."""
    return _setting("ROLLOUT_TICK_BATCH", 500)


def lease_seconds() -> int:
    """How long a tick's lease lasts; must exceed the longest tick (renewed every tick)."""
    return _setting("ROLLOUT_LEASE_SECONDS", 90)


@dataclass
class TickResult:
    """What one tick did. ``finished``: nothing left to do (terminal, or paused).
    ``waiting``: the rollout only waits on purpose (a bake, or sites waiting for their
    maintenance window), so its driver may tick less often."""

    rollout_id: int
    status: str
    patched: int = 0
    settled: int = 0
    advanced: bool = False
    busy: bool = False
    finished: bool = False
    waiting: bool = False
    # In-flight targets the tick's status read left unsettled: {slug: generation awaited},
    # and when the wave's deadline passes (None while paused): what the driver waits on.
    waiting_on: dict[str, int] = field(default_factory=dict)
    wave_deadline: datetime | None = None

    @property
    def made_progress(self) -> bool:
        return bool(self.patched or self.settled or self.advanced)


# --- lease ------------------------------------------------------------------------------------


def acquire_lease(rollout_id: int, owner: str) -> bool:
    """Take (or renew) the rollout's tick lease for ``owner``; False if another job holds it."""
    now = timezone.now()
    return (
        Rollout.objects.filter(pk=rollout_id)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=owner))
        .update(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds()))
        == 1
    )


def release_lease(rollout_id: int, owner: str) -> None:
    Rollout.objects.filter(pk=rollout_id, lease_owner=owner).update(
        lease_owner="", lease_until=None
    )


# --- the tick ----------------------------------------------------------------------------------


class _LeaseKeeper:
    """Renews a tick's lease every third of its length while the tick runs.

    A tick's length is not bounded by the lease: API retries honour ``Retry-After`` and back
    off, so a throttled wave can take longer than ``ROLLOUT_LEASE_SECONDS``. Without renewal
    the lease would lapse mid-tick and the schedule would start a second job beside it (found
    by the chaos run, bench/chaos). A killed worker takes its keeper with it, so its lease
    still lapses. A renewal that fails means another job took the lease: logged as a warning.
    """

    def __init__(self, rollout_id: int, owner: str) -> None:
        self.rollout_id = rollout_id
        self.owner = owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollout-lease", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(lease_seconds() / 3):
                if not acquire_lease(self.rollout_id, self.owner):
                    logger.warning(
                        "rollout #%s: lease of job %s lost while ticking",
                        self.rollout_id,
                        self.owner,
                    )
                    return
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> _LeaseKeeper:
        # Inside a caller's transaction (tests) another connection could not see the row.
        if not connection.in_atomic_block:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def tick(
    rollout_id: int,
    *,
    cluster: Cluster | None = None,
    lease_owner: str = "",
    watch: SiteWatch | None = None,
) -> TickResult:
    """One bounded, idempotent step of rollout ``rollout_id`` (see module docstring).

    Pass ``lease_owner`` to tick under a lease held across ticks (a job); without it the tick
    takes and releases its own lease. Returns ``busy=True`` without doing anything if another
    job holds the lease. With a live ``watch``, the status read of the wave comes from its
    cache instead of a LIST (same snapshots, same generations awaited). The lease is renewed
    while the tick runs (``_LeaseKeeper``).
    """
    owner = lease_owner or uuid.uuid4().hex
    if not acquire_lease(rollout_id, owner):
        status = Rollout.objects.filter(pk=rollout_id).values_list("status", flat=True).first()
        return TickResult(rollout_id, status or "", busy=True)
    try:
        with _LeaseKeeper(rollout_id, owner):
            return _tick(rollout_id, cluster, watch)
    finally:
        if not lease_owner:
            release_lease(rollout_id, owner)


def _tick(rollout_id: int, cluster: Cluster | None, watch: SiteWatch | None) -> TickResult:
    rollout = Rollout.objects.get(pk=rollout_id)
    if rollout.status in (RStatus.RUNNING, RStatus.PAUSED):
        return _Tick(rollout, cluster, watch).forward()
    if rollout.status == RStatus.REVERTING:
        return _Tick(rollout, cluster, watch).revert()
    if rollout.targets.filter(status=TStatus.PATCHING).exists():
        return _Tick(rollout, cluster, watch).settle_stopped()
    return TickResult(rollout_id, rollout.status, finished=True)


def _change_cause(rollout: Rollout, image: str) -> str:
    verb = "rollback" if rollout.kind == Rollout.Kind.ROLLBACK else "upgrade"
    return f"subscribie-admin rollout #{rollout.pk} ({verb}) by {rollout.actor_label}: {image}"


def _failure_text(exc: ClusterError) -> str:
    if exc.not_found:
        return "Deployment missing"
    if exc.transient:
        return f"retries exhausted: {exc}"
    return f"API error: {exc}"


@dataclass(frozen=True)
class _Direction:
    """Which way a wave's targets move; the patch / observe / settle code is shared.

    A target is ``claimed``, patched (the generation the PATCH returned is stored in
    ``generation_field``, status ``in_flight``), then settled from one status read of the wave:
    ``succeeded`` once its Deployment rolled out, ``failed`` when it failed, is missing or
    missed the wave deadline. It moves from the image in ``origin_field`` to the one in
    ``image_field``; each settled target is audited as ``target.<new status>``.

    ``forward`` is the rollout's first touch of a site: it records the image the site ran
    before (what a revert goes back to) and audits each patch; a revert is audited only when
    a target settles.
    """

    claimed: str
    in_flight: str
    succeeded: str
    failed: str
    image_field: str
    origin_field: str
    generation_field: str
    error_prefix: str  # on ``last_error``, so a failed revert reads as one in the target list
    deadline_message: str  # str.format with ``timeout`` (seconds) and ``state`` (the message)
    forward: bool

    def image(self, target: RolloutTarget) -> str:
        return getattr(target, self.image_field)

    def generation(self, target: RolloutTarget) -> int | None:
        return getattr(target, self.generation_field)

    def images(self, target: RolloutTarget) -> dict[str, str]:
        """The images an audit row of ``target`` names: the one it leaves, the one it gets."""
        return {"from_image": getattr(target, self.origin_field), "to_image": self.image(target)}

    def revisions(self, target: RolloutTarget) -> dict[str, str | None]:
        """The revisions an audit row of ``target`` names."""
        if self.forward:
            return {"from_revision": target.from_revision}
        # A revert does not know the revision it leaves, only the one it restores.
        return {"from_revision": None, "restored_revision_was": target.from_revision}


FORWARD = _Direction(
    claimed=TStatus.PATCHING,
    in_flight=TStatus.WAITING,
    succeeded=TStatus.SUCCEEDED,
    failed=TStatus.FAILED,
    image_field="to_image",
    origin_field="from_image",
    generation_field="generation",
    error_prefix="",
    deadline_message="wave deadline ({timeout}s) passed: {state}",
    forward=True,
)
# A reverting target stays `reverting` while in flight: its revert_generation tells the two apart.
REVERT = _Direction(
    claimed=TStatus.REVERTING,
    in_flight=TStatus.REVERTING,
    succeeded=TStatus.REVERTED,
    failed=TStatus.REVERT_FAILED,
    image_field="from_image",
    origin_field="to_image",
    generation_field="revert_generation",
    error_prefix="revert: ",
    deadline_message="wave deadline passed while reverting: {state}",
    forward=False,
)


class _Tick:
    """One tick's working state. Network calls happen only in ``_list``/``_patch_many``."""

    def __init__(self, rollout: Rollout, cluster: Cluster | None, watch: SiteWatch | None = None):
        self.rollout = rollout
        self._cluster = cluster
        self._watch = watch
        self.token = uuid.uuid4().hex
        self.result = TickResult(rollout.pk, rollout.status)

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = Cluster.from_settings()
        return self._cluster

    def targets(self):
        return RolloutTarget.objects.filter(rollout=self.rollout)

    # -- cluster I/O (outside transactions) -------------------------------------------------

    def _list(
        self,
        targets: Iterable[RolloutTarget],
        expected: dict[str, int] | None = None,
        *,
        cached: bool = False,
    ) -> dict[str, DeploymentSnapshot]:
        """Snapshots of the targets' Deployments: one LIST, or with ``cached`` and a live
        watch, its cache (what a LIST would return, kept current by the watch's events)."""
        slugs = [t.site.slug for t in targets]
        if cached and self._watch is not None and self._watch.live:
            return self._watch.snapshots(slugs, expected_generations=expected)
        return self.cluster.list_sites(slugs, expected_generations=expected or {})

    def _patch_many(
        self, images: dict[str, str], *, keep_going: Callable[[], bool] | None = None
    ) -> dict[str, DeploymentSnapshot | ClusterError]:
        """Patch ``{slug: image}`` with bounded concurrency; never raises for one site.

        ``keep_going`` is asked before each chunk of a few patches per worker (after the
        first): once it says no, the rest is not patched and is missing from the result, so
        a cancel or pause stops a large wave within one chunk instead of after all of it.
        """

        def one(item: tuple[str, str]) -> tuple[str, DeploymentSnapshot | ClusterError]:
            slug, image = item
            try:
                return slug, self.cluster.set_image(
                    slug, image, change_cause=_change_cause(self.rollout, image)
                )
            except ClusterError as exc:
                return slug, exc

        if not images:
            return {}
        items = list(images.items())
        workers = max(1, min(_setting("KUBE_CONCURRENCY", 16), len(items)))
        chunk = workers * 4
        results: dict[str, DeploymentSnapshot | ClusterError] = {}
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i in range(0, len(items), chunk):
                if i and keep_going is not None and not keep_going():
                    break
                results.update(pool.map(one, items[i : i + chunk]))
        return results

    def _still_running(self) -> bool:
        """Forward patches continue only while staff have not paused or cancelled."""
        return Rollout.objects.filter(pk=self.rollout.pk, status=RStatus.RUNNING).exists()

    # -- bookkeeping ---------------------------------------------------------------------------

    def _set_target(
        self, target: RolloutTarget, old: str, *, where: dict | None = None, **fields
    ) -> bool:
        """CAS one target from ``old`` (and ``where``); updates the instance when it changed."""
        changed = RolloutTarget.objects.filter(pk=target.pk, status=old, **(where or {})).update(
            **fields
        )
        if changed == 1:
            for name, value in fields.items():
                setattr(target, name, value)
            return True
        return False

    def _set_targets(
        self, targets: list[RolloutTarget], old: str, *, where: dict | None = None, **fields
    ) -> list[RolloutTarget]:
        """``_set_target`` for many targets getting the same ``fields``; returns those changed.

        One CAS UPDATE per chunk of ids (guarded by ``old`` and ``where``, like the one-row
        CAS). If any row did not match, the grouped UPDATE is rolled back (savepoint) and each
        target is CAS'd on its own, so exactly the targets that changed are reported.
        """
        if len(targets) < 2:
            return [t for t in targets if self._set_target(t, old, where=where, **fields)]
        pks = [t.pk for t in targets]
        try:
            with transaction.atomic():
                changed = 0
                for i in range(0, len(pks), _CAS_CHUNK):
                    changed += RolloutTarget.objects.filter(
                        pk__in=pks[i : i + _CAS_CHUNK], status=old, **(where or {})
                    ).update(**fields)
                if changed != len(pks):
                    raise _PartialCAS
        except _PartialCAS:
            return [t for t in targets if self._set_target(t, old, where=where, **fields)]
        for target in targets:
            for name, value in fields.items():
                setattr(target, name, value)
        return targets

    def _event(
        self, action: str, target: RolloutTarget, *, ok: bool = True, message: str = "", **data
    ) -> dict:
        """One target's audit event (arguments for ``audit.record`` and its bulk forms)."""
        return {
            "action": action,
            "actor": ENGINE_ACTOR,
            "site": target.site,
            "rollout": self.rollout,
            "data": {"wave": target.wave + 1, **data},
            "ok": ok,
            "message": message,
        }

    def _touch(self, **fields) -> None:
        Rollout.objects.filter(pk=self.rollout.pk).update(last_progress_at=clock.now(), **fields)

    def _status_counts(self) -> dict[str, int]:
        """``{status: count}`` of this rollout's targets (one query)."""
        return dict(self.targets().values_list("status").annotate(n=Count("id")).order_by())

    def _report_moved(self, *, finished: bool | None = None) -> TickResult:
        """This tick moved the rollout itself: report its committed status.

        ``finished`` defaults to whether that status is a finished one.
        """
        self.rollout.refresh_from_db()
        self.result.status = self.rollout.status
        if finished is None:
            finished = self.rollout.status in Rollout.FINISHED_STATUSES
        self.result.finished = finished
        return self.result

    @staticmethod
    def _set_site_images(images: dict[int, str]) -> None:
        """Record the image each site should now run (so status refresh sees no drift)."""
        by_image: dict[str, list[int]] = defaultdict(list)
        for site_id, image in images.items():
            by_image[image].append(site_id)
        for image, ids in by_image.items():
            Site.objects.filter(pk__in=ids).update(image=image)

    # -- one wave, either direction: patch, observe, settle ------------------------------------

    def _patch(self, targets: list[RolloutTarget], d: _Direction) -> None:
        """Patch claimed ``targets`` to ``d``'s image: each goes in flight, or fails.

        A site the cluster already runs the image on is not patched again (a crashed tick may
        have patched it): its current generation is awaited instead. The in-flight CAS also
        requires no stored generation, so a job that runs twice cannot store two.
        """
        # The one read before the patch. Forward, the watch's cache will do: these sites were
        # not patched by this rollout yet. A revert reads a LIST, never a cache that might
        # still lag behind the forward patch it undoes.
        listing = self._list(targets, cached=d.forward)
        if d.forward:
            self._record_origin(targets, listing)
        wanted = {
            t.site.slug: d.image(t)
            for t in targets
            if (snap := listing.get(t.site.slug)) is not None and snap.image != d.image(t)
        }
        results = self._patch_many(wanted, keep_going=self._still_running if d.forward else None)
        now = clock.now()
        failures: list[tuple[RolloutTarget, str, dict]] = []
        retries: list[tuple[RolloutTarget, str]] = []
        stopped: list[RolloutTarget] = []  # not patched: the rollout was paused or cancelled
        # In-flight targets by the generation they get: one CAS UPDATE per generation.
        in_flight: dict[int, list[RolloutTarget]] = defaultdict(list)
        for target in targets:
            slug = target.site.slug
            if slug in wanted and slug not in results:
                stopped.append(target)
                continue
            outcome = results.get(slug, listing.get(slug))
            if isinstance(outcome, ClusterError) and outcome.transient and now < self._deadline():
                # A throttled or failing API server says nothing about the site: patch it
                # again next tick. Only the wave deadline turns this into a failure.
                retries.append((target, _failure_text(outcome)))
                continue
            if outcome is None or isinstance(outcome, ClusterError):
                error = "Deployment missing" if outcome is None else _failure_text(outcome)
                data = d.images(target)
                if outcome is not None and d.forward:
                    data |= {**d.revisions(target), "http_status": outcome.status}
                failures.append((target, error, data))
            else:
                in_flight[outcome.generation].append(target)
        if d.forward and retries and not self._still_running():
            stopped += [target for target, _ in retries]  # paused or cancelled meanwhile
            retries = []
        events: dict[int, dict] = {}  # by target id, audited in the targets' order
        # The Deployment's spec runs the new image from the patch on, whether or not the
        # target ever settles (a rollout cancelled without revert settles nothing).
        site_images: dict[int, str] = {}
        with transaction.atomic():
            events |= self._settle_many(failures, d, old=d.claimed, now=now)
            events |= self._retry_later(retries, d)
            self._unclaim(stopped, now=now)
            for generation, group in in_flight.items():
                for target in self._set_targets(
                    group,
                    d.claimed,
                    where={f"{d.generation_field}__isnull": True},
                    status=d.in_flight,
                    **{d.generation_field: generation},
                ):
                    site_images[target.site_id] = d.image(target)
                    patched = target.site.slug in results
                    self.result.patched += int(patched)
                    if d.forward:
                        events[target.pk] = self._event(
                            "target.patched",
                            target,
                            message="" if patched else f"already on {d.image(target)}; not patched",
                            **d.images(target),
                            **d.revisions(target),
                            generation=generation,
                        )
            audit.record_many(events[t.pk] for t in targets if t.pk in events)
            if site_images:
                self._set_site_images(site_images)
            self._touch()

    def _unclaim(self, stopped: list[RolloutTarget], *, now: datetime) -> None:
        """Claimed targets left unpatched because staff paused or cancelled mid-wave: back to
        pending when paused (patched after resume), else skipped as ``rollout_cancel`` skips
        pending ones (its audit row covers them)."""
        if not stopped:
            return
        paused = Rollout.objects.filter(pk=self.rollout.pk, status=RStatus.PAUSED).exists()
        if paused:
            fields = {"status": TStatus.PENDING, "claim": ""}
        else:
            fields = {"status": TStatus.SKIPPED, "finished_at": now,
                      "last_error": "rollout stopped before this site was patched"}  # fmt: skip
        self._set_targets(stopped, TStatus.PATCHING, where={"generation__isnull": True}, **fields)

    def _deadline(self) -> datetime:
        """When the current wave's deadline passes (a wave not started yet starts now)."""
        started = self.rollout.wave_started_at or clock.now()
        return started + timedelta(seconds=self.rollout.wave_timeout_seconds)

    def _retry_later(self, retries: list[tuple[RolloutTarget, str]], d: _Direction) -> dict:
        """Targets whose patch hit a transient API error go back for the next tick: forward
        ones to ``pending`` (claimed again), reverting ones stay unpatched (no revert
        generation). Each is audited as ``target.retry``; returns those events by target id."""
        events: dict[int, dict] = {}
        for target, error in retries:
            fields = {"last_error": d.error_prefix + error}
            if d.forward:
                fields |= {"status": TStatus.PENDING, "claim": ""}
            else:
                fields |= {"attempts": F("attempts") + 1}
            if self._set_target(
                target, d.claimed, where={f"{d.generation_field}__isnull": True}, **fields
            ):
                events[target.pk] = self._event(
                    "target.retry", target, ok=False, message=error, **d.images(target)
                )
        return events

    @staticmethod
    def _record_origin(
        targets: list[RolloutTarget], listing: dict[str, DeploymentSnapshot]
    ) -> None:
        """Store the image each site runs before its first patch: where a revert goes back to.

        Read from the cluster, not the database (drift); stored before the patch, so a tick
        that crashes after patching still knows the old image.
        """
        first_read: list[RolloutTarget] = []
        for target in targets:
            snap = listing.get(target.site.slug)
            if snap is not None and not target.from_image and target.generation is None:
                target.from_image = snap.image or ""
                target.from_revision = snap.revision
                first_read.append(target)
        # One UPDATE per distinct (from_image, from_revision), not a CASE per row.
        by_origin: dict[tuple[str, int | None], list[int]] = defaultdict(list)
        for target in first_read:
            by_origin[(target.from_image, target.from_revision)].append(target.pk)
        with transaction.atomic():  # no network call in here
            for (from_image, from_revision), pks in by_origin.items():
                for i in range(0, len(pks), _CAS_CHUNK):
                    RolloutTarget.objects.filter(pk__in=pks[i : i + _CAS_CHUNK]).update(
                        from_image=from_image, from_revision=from_revision
                    )

    def _observe(self, targets: list[RolloutTarget], d: _Direction, *, deadlines: bool) -> None:
        """Settle in-flight ``targets`` from one status read; the rest stay in flight."""
        rollout = self.rollout
        expected = {t.site.slug: gen for t in targets if (gen := d.generation(t)) is not None}
        listing = self._list(targets, expected, cached=True)  # the one status read of the wave
        now = clock.now()
        started = rollout.wave_started_at or now
        deadline = started + timedelta(seconds=rollout.wave_timeout_seconds)
        deadline_passed = deadlines and now >= deadline
        self.result.wave_deadline = deadline if deadlines else None
        settling: list[tuple[RolloutTarget, str | None, dict]] = []
        seen: set[int] = set()  # targets whose Deployment was read
        for target in targets:
            snap = listing.get(target.site.slug)
            if snap is None:
                error = "Deployment missing"
            elif snap.state.failed:
                error = snap.state.message
            elif snap.state.done:
                error = None
            elif deadline_passed:
                error = d.deadline_message.format(
                    timeout=rollout.wave_timeout_seconds, state=snap.state.message
                )
            else:
                if (generation := d.generation(target)) is not None:
                    self.result.waiting_on[target.site.slug] = generation
                continue
            if snap is not None:
                seen.add(target.pk)
            data = {
                **d.images(target),
                **d.revisions(target),
                "revision": snap.revision if snap else None,
                "generation": d.generation(target),
            }
            settling.append((target, error, data))
        with transaction.atomic():
            events = self._settle_many(settling, d, old=d.in_flight, now=now)
            audit.record_many(events.values())
            # The Deployment's spec runs the image, whether it rolled out or fails on it.
            site_images = {
                t.site_id: d.image(t) for t, _, _ in settling if t.pk in events and t.pk in seen
            }
            if site_images:
                self._set_site_images(site_images)
            if self.result.settled:
                self._touch()

    def _settle_many(
        self, settling: list[tuple[RolloutTarget, str | None, dict]], d: _Direction, *,
        old: str, now: datetime,
    ) -> dict[int, dict]:  # fmt: skip
        """CAS each ``(target, error, data)`` from ``old`` to succeeded (no ``error``) or failed.

        Targets with identical new values share one CAS UPDATE. Returns the audit event of
        every target that changed, by target id, in ``settling`` order (the caller records
        them in the same transaction).
        """
        groups: dict[str | None, list[RolloutTarget]] = defaultdict(list)
        for target, error, _data in settling:
            groups[error].append(target)
        changed: set[int] = set()
        for error, group in groups.items():
            if error is None:
                status, fields = d.succeeded, {}
            else:
                status, fields = d.failed, {"last_error": d.error_prefix + error}
            changed.update(
                t.pk
                for t in self._set_targets(group, old, status=status, finished_at=now, **fields)
            )
        events: dict[int, dict] = {}
        for target, error, data in settling:
            if target.pk in changed:
                self.result.settled += 1
                events[target.pk] = self._event(
                    f"target.{target.status}", target, ok=error is None, message=error or "",
                    **data,
                )  # fmt: skip
        return events

    # -- forward -------------------------------------------------------------------------------

    def forward(self) -> TickResult:
        rollout = self.rollout
        wave = rollout.current_wave
        if rollout.status == RStatus.RUNNING:
            if rollout.respect_windows:
                self._gate_windows(wave)
            claimed = self._claim(wave)
            if claimed:
                self._patch(claimed, FORWARD)
        waiting = list(
            self.targets()
            .filter(wave=wave, status=TStatus.WAITING)
            .select_related("site")
            .only(*_target_fields())
        )
        if waiting:
            # Paused: observe only; the deadline does not run while paused.
            self._observe(waiting, FORWARD, deadlines=rollout.status == RStatus.RUNNING)
        if rollout.status == RStatus.PAUSED:
            self.result.finished = not self.targets().filter(status=TStatus.WAITING).exists()
            return self.result
        still_open = set(
            self.targets()
            .filter(wave=wave, status__in=RolloutTarget.OPEN_STATUSES)
            .values_list("status", flat=True)
            .distinct()
        )
        if still_open:
            self.result.waiting = still_open == {TStatus.WAITING_WINDOW}
            return self.result
        if self._baking(wave):
            return self.result
        return self._advance()

    # -- maintenance windows and bake (policy in rollouts/window_gate.py, rollouts/bake.py) ----

    def _gate_windows(self, wave: int) -> None:
        """Hold the wave's unpatched sites outside their window; release those inside it.

        pending -> waiting_window (audited, with when the window opens) and waiting_window ->
        pending, both CAS. Releasing restarts the wave's deadline at the window's opening, so
        a site patched at 02:00 gets the whole deadline from 02:00.
        """
        rollout = self.rollout
        now = clock.now()
        rows = list(
            self.targets()
            .filter(wave=wave, status__in=RolloutTarget.UNPATCHED_STATUSES)
            .values_list("id", "status", "window_opens_at", "site__maintenance_window")
        )
        if not rows:
            return
        decision = gate(((pk, text) for pk, _, _, text in rows), now=now)
        by_id = {pk: (status, opens_at) for pk, status, opens_at, _ in rows}
        first_hold = [pk for pk in decision.held if by_id[pk][0] == TStatus.PENDING]
        moved_on: dict[datetime | None, list[int]] = defaultdict(list)  # held, new opening
        for pk, held in decision.held.items():
            if by_id[pk][0] == TStatus.WAITING_WINDOW and by_id[pk][1] != held.opens_at:
                moved_on[held.opens_at].append(pk)
        released = [pk for pk in decision.open if by_id[pk][0] == TStatus.WAITING_WINDOW]
        if not (first_hold or moved_on or released):
            if decision.held:
                self._touch_while_waiting(now)
            return
        holding: dict[datetime | None, list[RolloutTarget]] = defaultdict(list)
        for target in (
            self.targets().filter(pk__in=first_hold).select_related("site").only(*_target_fields())
        ):
            holding[decision.held[target.pk].opens_at].append(target)
        with transaction.atomic():
            events = []
            for opens_at, group in holding.items():
                for target in self._set_targets(
                    group, TStatus.PENDING, status=TStatus.WAITING_WINDOW, window_opens_at=opens_at
                ):
                    events.append(
                        self._event(
                            "target.waiting_window",
                            target,
                            message=decision.held[target.pk].reason,
                            opens_at=opens_at.isoformat() if opens_at else None,
                        )
                    )
            for opens_at, pks in moved_on.items():
                RolloutTarget.objects.filter(pk__in=pks, status=TStatus.WAITING_WINDOW).update(
                    window_opens_at=opens_at
                )
            if released:
                RolloutTarget.objects.filter(pk__in=released, status=TStatus.WAITING_WINDOW).update(
                    status=TStatus.PENDING
                )
                opened = max((decision.open[pk] or now for pk in released), default=now)
                started = rollout.wave_started_at
                if started is None or opened > started:
                    Rollout.objects.filter(pk=rollout.pk, current_wave=wave).update(
                        wave_started_at=opened
                    )
                    rollout.wave_started_at = opened
            if events:
                audit.record_many(events)
            self._touch()

    def _baking(self, wave: int) -> bool:
        """True while the settled ``wave`` bakes; fails targets that turn unavailable.

        The bake runs from the later of ``bake_started_at`` (when the wave was first seen
        settled) and ``wave_started_at`` (a resume restarts it). Returns False when there is
        no bake, it is over, or a failure broke the budget (``_advance`` then halts).
        """
        rollout = self.rollout
        if not rollout.bake_seconds or rollout.status != RStatus.RUNNING:
            return False
        now = clock.now()
        if rollout.bake_started_at is None:
            with transaction.atomic():  # the CAS and its audit row together
                changed = Rollout.objects.filter(
                    pk=rollout.pk, status=RStatus.RUNNING, current_wave=wave,
                    bake_started_at__isnull=True,
                ).update(bake_started_at=now, last_progress_at=now)  # fmt: skip
                if changed:
                    rollout.bake_started_at = now
                    audit.record(
                        action="rollout.bake",
                        actor=ENGINE_ACTOR,
                        rollout=rollout,
                        message=f"wave {wave + 1} healthy; baking for {rollout.bake_seconds}s",
                        data={"wave": wave + 1, "bake_seconds": rollout.bake_seconds},
                    )
            self.result.advanced = True
            return True
        since = max(rollout.bake_started_at, rollout.wave_started_at or rollout.bake_started_at)
        healthy = list(
            self.targets()
            .filter(wave=wave, status=TStatus.SUCCEEDED)
            .select_related("site")
            .only(*_target_fields())
        )
        lost = []
        if healthy:
            listing = self._list(healthy)  # the one status read of the baking wave
            for target in healthy:
                snap = listing.get(target.site.slug)
                reason = unavailable_reason(snap, bake_seconds=rollout.bake_seconds)
                if reason is not None:
                    data = {
                        **FORWARD.images(target),
                        **FORWARD.revisions(target),
                        "revision": snap.revision if snap else None,
                        "generation": target.generation,
                        "during_bake": True,
                    }
                    lost.append((target, reason, data))
        if lost:
            with transaction.atomic():
                events = self._settle_many(lost, FORWARD, old=TStatus.SUCCEEDED, now=now)
                audit.record_many(events.values())
                self._touch()
            counts = self._status_counts()
            budget = parse_failure_budget(rollout.max_failures)
            if budget.exceeded(counts.get(TStatus.FAILED, 0), sum(counts.values())):
                return False
        if BakeClock(rollout.bake_seconds, since).over(now):
            return False
        self._touch_while_waiting(now)
        self.result.waiting = not lost
        return True

    def _touch_while_waiting(self, now: datetime) -> None:
        """Alive and deliberately waiting (bake, windows): keep the stale-rollout reaper away,
        with at most one write every ``_WAITING_TOUCH`` rather than one per tick."""
        last = self.rollout.last_progress_at
        if last is None or now - last >= _WAITING_TOUCH:
            self._touch()

    def _claim(self, wave: int) -> list[RolloutTarget]:
        """Claim pending targets of ``wave`` for this tick (CAS), plus orphans of a crash.

        The claim also requires the rollout to be running, so a pause committed before the
        claim stops any further patching.
        """
        ids = list(
            self.targets()
            .filter(wave=wave, status=TStatus.PENDING)
            .order_by("position")
            .values_list("id", flat=True)[: tick_batch()]
        )
        if ids:
            RolloutTarget.objects.filter(
                id__in=ids, status=TStatus.PENDING, rollout__status=RStatus.RUNNING
            ).update(
                status=TStatus.PATCHING,
                claim=self.token,
                attempts=F("attempts") + 1,
                patched_at=clock.now(),
            )
        # Ours, and any left in `patching` by a tick that died (we hold the lease).
        return list(
            self.targets()
            .filter(wave=wave, status=TStatus.PATCHING)
            .select_related("site")
            .only(*_target_fields())
            .order_by("position")
        )

    def _advance(self) -> TickResult:
        """The current wave is settled: next wave, succeeded, or halted over budget."""
        rollout = self.rollout
        counts = self._status_counts()
        total = sum(counts.values())
        failed = counts.get(TStatus.FAILED, 0)
        budget = parse_failure_budget(rollout.max_failures)
        now = clock.now()
        wave = rollout.current_wave
        self.result.advanced = True
        with transaction.atomic():
            if budget.exceeded(failed, total):
                message = (
                    f"halted in wave {wave + 1}: failure budget exceeded, {failed} of {total} "
                    f"targets failed (allowed {budget.allowed(total)})"
                )
                changed = Rollout.objects.filter(pk=rollout.pk, status=RStatus.RUNNING).update(
                    status=RStatus.HALTED,
                    status_message=message,
                    last_progress_at=now,
                    finished_at=None if rollout.auto_revert else now,
                )
                if changed:
                    # Sites after the halt are never touched: say so on their targets.
                    self.targets().filter(status__in=RolloutTarget.UNPATCHED_STATUSES).update(
                        status=TStatus.SKIPPED, last_error="rollout halted", finished_at=now
                    )
                    audit.record(
                        action="rollout.halt",
                        actor=ENGINE_ACTOR,
                        rollout=rollout,
                        ok=False,
                        message=message,
                        data={"wave": wave + 1, "failed": failed, "total": total},
                    )
                    if rollout.auto_revert:
                        Rollout.objects.filter(pk=rollout.pk, status=RStatus.HALTED).update(
                            status=RStatus.REVERTING, wave_started_at=None
                        )
                        audit.record(
                            action="rollout.revert",
                            actor=ENGINE_ACTOR,
                            rollout=rollout,
                            message="auto-revert after halt",
                        )
                    notices.rollout_halted(rollout=rollout)  # staff email, after commit
            elif wave + 1 < rollout.wave_count:
                changed = Rollout.objects.filter(
                    pk=rollout.pk, status=RStatus.RUNNING, current_wave=wave
                ).update(
                    current_wave=wave + 1,
                    wave_started_at=now,
                    last_progress_at=now,
                    bake_started_at=None,
                )
                if changed:
                    audit.record(
                        action="rollout.wave",
                        actor=ENGINE_ACTOR,
                        rollout=rollout,
                        data={
                            "wave": wave + 2,
                            "completed_wave": wave + 1,
                            "failed": failed,
                            "total": total,
                            "baked_seconds": rollout.bake_seconds,
                        },
                    )
            else:
                where = (
                    "back on the previous image"
                    if rollout.kind == Rollout.Kind.ROLLBACK
                    else "on the new image"
                )
                message = (
                    f"{total - failed - counts.get(TStatus.SKIPPED, 0)} of {total} "
                    f"sites {where}; {failed} failed"
                )
                changed = Rollout.objects.filter(pk=rollout.pk, status=RStatus.RUNNING).update(
                    status=RStatus.SUCCEEDED,
                    finished_at=now,
                    last_progress_at=now,
                    status_message=message,
                )
                if changed:
                    audit.record(
                        action="rollout.succeed",
                        actor=ENGINE_ACTOR,
                        rollout=rollout,
                        message=message,
                        data={
                            "failed": failed,
                            "total": total,
                            "skipped": counts.get(TStatus.SKIPPED, 0),
                        },
                    )
        return self._report_moved()

    # -- revert --------------------------------------------------------------------------------

    CHANGED = (
        Q(status__in=(TStatus.SUCCEEDED, TStatus.FAILED, TStatus.WAITING), generation__isnull=False)
        & ~Q(from_image="")
        & ~Q(from_image=F("to_image"))
    )

    def revert(self) -> TickResult:
        rollout = self.rollout
        orphans = list(
            self.targets()
            .filter(status=TStatus.PATCHING)
            .select_related("site")
            .only(*_target_fields())
        )
        if orphans:
            self._settle_orphans(orphans)
        if not self.targets().filter(status=TStatus.REVERTING).exists():
            wave = self.targets().filter(self.CHANGED).aggregate(w=Max("wave"))["w"]
            if wave is None:
                return self._finish_revert()
            with transaction.atomic():
                RolloutTarget.objects.filter(
                    self.CHANGED, rollout=rollout, wave=wave, rollout__status=RStatus.REVERTING
                ).update(
                    status=TStatus.REVERTING,
                    claim=self.token,
                    revert_generation=None,
                    attempts=F("attempts") + 1,
                )
                Rollout.objects.filter(pk=rollout.pk, status=RStatus.REVERTING).update(
                    current_wave=wave, wave_started_at=clock.now()
                )
            rollout.refresh_from_db()
            self.result.advanced = True
        unpatched = list(
            self.targets()
            .filter(status=TStatus.REVERTING, revert_generation__isnull=True)
            .select_related("site")
            .only(*_target_fields())[: tick_batch()]
        )
        if unpatched:
            self._patch(unpatched, REVERT)
        reverting = list(
            self.targets()
            .filter(status=TStatus.REVERTING, revert_generation__isnull=False)
            .select_related("site")
            .only(*_target_fields())
        )
        if reverting:
            self._observe(reverting, REVERT, deadlines=True)
        return self.result

    def settle_stopped(self) -> TickResult:
        """A finished rollout (cancelled without revert, halted) whose tick died mid-patch:
        record what that tick patched, as the revert does before it starts. Holding the lease
        proves the tick that claimed them is gone."""
        orphans = list(
            self.targets()
            .filter(status=TStatus.PATCHING)
            .select_related("site")
            .only(*_target_fields())
        )
        self._settle_orphans(orphans)
        self.result.status = self.rollout.status
        self.result.finished = True
        return self.result

    def _settle_orphans(self, orphans: list[RolloutTarget]) -> None:
        """Targets a crashed tick left in ``patching`` when the rollout stopped: did it patch?

        Patched ones become ``waiting`` with the patch's audit row and the site's image (a
        cancelled rollout keeps them, as it keeps every site it had patched); the rest are
        skipped."""
        listing = self._list(orphans)
        now = clock.now()
        events = []
        site_images: dict[int, str] = {}
        with transaction.atomic():
            for target in orphans:
                snap = listing.get(target.site.slug)
                if snap is not None and snap.image == target.to_image and target.from_image:
                    # The crashed tick did patch it: record what it could not (the patch's
                    # audit row, the site's image), as its own settle would have.
                    if self._set_target(
                        target, TStatus.PATCHING, status=TStatus.WAITING, generation=snap.generation
                    ):
                        site_images[target.site_id] = target.to_image
                        events.append(
                            self._event(
                                "target.patched",
                                target,
                                message="patched by a tick that did not finish",
                                **FORWARD.images(target),
                                **FORWARD.revisions(target),
                                generation=snap.generation,
                            )
                        )
                else:
                    self._set_target(
                        target,
                        TStatus.PATCHING,
                        status=TStatus.SKIPPED,
                        finished_at=now,
                        last_error="rollout stopped before this site was patched",
                    )
            audit.record_many(events)
            if site_images:
                self._set_site_images(site_images)

    def _finish_revert(self) -> TickResult:
        rollout = self.rollout
        counts = self._status_counts()
        reverted = counts.get(TStatus.REVERTED, 0)
        failed = counts.get(TStatus.REVERT_FAILED, 0)
        note = f"reverted {reverted} sites" + (
            f"; {failed} could not be reverted" if failed else ""
        )
        message = f"{rollout.status_message}; {note}" if rollout.status_message else note
        now = clock.now()
        with transaction.atomic():
            changed = Rollout.objects.filter(pk=rollout.pk, status=RStatus.REVERTING).update(
                status=RStatus.REVERTED,
                finished_at=now,
                last_progress_at=now,
                status_message=message,
            )
            if changed:
                audit.record(
                    action="rollout.reverted",
                    actor=ENGINE_ACTOR,
                    rollout=rollout,
                    ok=not failed,
                    message=message,
                    data={"reverted": reverted, "revert_failed": failed},
                )
                notices.sites_reverted(rollout=rollout)  # owners' emails, after commit
        self.result.advanced = True
        return self._report_moved(finished=True)


# --- driving ticks -----------------------------------------------------------------------------


@dataclass
class RunResult:
    rollout: Rollout
    busy: bool = False
    ticks: int = 0


def run_until_settled(
    rollout_id: int,
    *,
    progress: Callable[[Rollout], None] | None = None,
    poll: float = 0.2,
    max_seconds: float | None = None,
    cluster: Cluster | None = None,
    lease_owner: str = "",
    give_way: bool = False,
    keep_lease: bool = False,
    watch: bool = True,
) -> RunResult:
    """Tick ``rollout_id`` until it is finished or paused (``--sync`` and the engine job).

    Holds one lease across ticks. ``give_way``: return at once (``busy``) if another job holds
    the lease, instead of waiting for it. ``max_seconds`` bounds a job's run; ``keep_lease``
    leaves the lease in place for the job's successor (so the schedule does not start a
    second chain). ``progress`` is called with the rollout after every tick.

    Between ticks it waits on events, not a period: with ``watch`` (one watch of the site
    Deployments, ``cluster.watch``) the next tick runs as soon as every in-flight target of
    the wave has rolled out, one has failed, or its deadline passes (and at least every
    ``PROGRESS_SECONDS``, so progress shows and a pause or cancel is seen). Without a live
    watch it polls, backing off from ``MIN_POLL`` to ``poll`` while nothing changes.
    """
    owner = lease_owner or uuid.uuid4().hex
    cluster = cluster or Cluster.from_settings()
    waiting_poll = float(getattr(settings, "ROLLOUT_WAITING_POLL_SECONDS", 5))
    # Started after the first tick, so its LIST (the whole fleet, decoded in another thread
    # but under the same GIL) does not delay the canary's PATCH; until it is live, reads
    # are LISTs of the wave.
    site_watch = SiteWatch(cluster) if watch else None
    started = time.monotonic()
    ticks = 0
    finished = False
    backoff = min(MIN_POLL, poll)
    try:
        while True:
            result = tick(rollout_id, cluster=cluster, lease_owner=owner, watch=site_watch)
            ticks += 1
            if site_watch is not None and not result.busy:
                site_watch.start()
            if result.busy and give_way:
                return RunResult(Rollout.objects.get(pk=rollout_id), busy=True, ticks=ticks)
            if progress is not None:
                progress(Rollout.objects.get(pk=rollout_id))
            if result.finished:
                finished = True
                break
            left = None if max_seconds is None else max_seconds - (time.monotonic() - started)
            if left is not None and left <= 0:
                break
            if result.waiting_on and result.patched < tick_batch() and not result.advanced:
                # The wave is in flight: wait for the cluster, not for a period.
                timeout = _wait_seconds(result, left)
                if site_watch is not None and not site_watch.live and not site_watch.failures:
                    site_watch.start(sync_timeout=timeout)  # its LIST, rather than one more
                if site_watch is not None and site_watch.live:
                    site_watch.wait(result.waiting_on, timeout=timeout)
                    backoff = min(MIN_POLL, poll)
                    continue
                time.sleep(min(backoff, timeout))
                backoff = min(backoff * 2, poll)
            elif not result.made_progress:
                # Waiting on purpose (bake, windows): no need to read the cluster often; still
                # wake in time for max_seconds.
                pause = max(backoff, waiting_poll) if result.waiting else backoff
                if left is not None:
                    pause = min(pause, max(left, 0))
                time.sleep(pause)
                backoff = min(backoff * 2, poll)
            else:
                backoff = min(MIN_POLL, poll)
    finally:
        if site_watch is not None:
            site_watch.stop()
        if finished or not keep_lease:
            release_lease(rollout_id, owner)
    return RunResult(Rollout.objects.get(pk=rollout_id), ticks=ticks)


MIN_POLL = 0.02  # the first poll interval without a watch; doubles up to ``poll``
PROGRESS_SECONDS = 1.0  # the longest wait between two ticks while a wave is in flight


def _wait_seconds(result: TickResult, left: float | None) -> float:
    """How long to wait for a wave in flight: until its deadline, a job's end, or a
    progress tick, whichever comes first."""
    timeout = PROGRESS_SECONDS
    if result.wave_deadline is not None:
        until_deadline = (result.wave_deadline - clock.now()).total_seconds()
        timeout = min(timeout, max(until_deadline, 0.0) + 0.01)
    if left is not None:
        timeout = min(timeout, left)
    return timeout
