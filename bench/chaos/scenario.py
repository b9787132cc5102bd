"""One seeded chaos run: a fleet on kubesim, a real qcluster with two workers, a sequence of
rollouts driven as staff would drive them (start, pause, resume, cancel, roll back), a fault
injector working through the seeded schedule meanwhile, then the invariants.

Needs Django set up on a migrated, empty database that a separate process can open
(``database_url``: a SQLite file or PostgreSQL), e.g. the bench's throwaway database or a
``transaction=True`` test's. Starts its own kubesim (in this process, so its store, journal
and ledger can be read and its server restarted) and its own CouchDB-compatible server.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos import invariants
from bench.chaos.faults import FaultInjector
from bench.chaos.plan import (
    BROKEN_MARK,
    FAULT_KINDS,
    V1,
    ChaosConfig,
    RolloutStep,
    fault_schedule,
    plan_rollouts,
)
from bench.chaos.processes import QCluster
from bench.chaos.signups import SignupFeed
from kubesim import KubeSim

NAMESPACE = "chaos-sites"
ACTOR = "system:chaos"


def chaos_approver():
    """The staff member who approves the run's whole-fleet upgrades (not their creator)."""
    from django.contrib.auth.models import Permission, User

    user, created = User.objects.get_or_create(
        username="chaos-approver", defaults={"is_staff": True}
    )
    if created:
        user.user_permissions.add(Permission.objects.get(codename="approve_rollout"))
    return User.objects.get(pk=user.pk)  # fresh: permissions are cached per instance


CRON_EVERY = 1.0  # seconds between two "the schedule fired" nudges of a lease-less rollout


@dataclass
class StepResult:
    step: RolloutStep
    rollout_id: int | None
    status: str = ""
    message: str = ""
    seconds: float = 0.0
    finished: bool = False
    availability: dict[str, int] = field(default_factory=dict)
    excused: set[str] = field(default_factory=set)  # broken-image canaries


@dataclass
class ChaosReport:
    config: ChaosConfig
    steps: list[StepResult]
    faults: dict[str, int]
    fault_log: list
    checks: list[invariants.Check]
    notes: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.held for c in self.checks)


# --- the fleet ---------------------------------------------------------------------------------


def connect(sim: KubeSim):
    from cluster.gateway import Cluster, RetryPolicy

    return Cluster.connect(
        namespace=NAMESPACE,
        kubeconfig=sim.kubeconfig_path,
        qps=0,
        burst=1,
        pool_size=16,
        retry=RetryPolicy(attempts=6, base_delay=0.05, max_delay=0.5, max_retry_after=5),
    )


def deploy_fleet(sim: KubeSim, count: int) -> None:
    """``count`` live sites on ``V1`` (the first one a canary), rolled out on kubesim."""
    from cluster.manifests import ClusterSettings, SiteSpec, deployment_manifest
    from sites.models import Site

    cluster = connect(sim)
    cluster.ensure_namespace()
    settings_ = ClusterSettings(
        namespace=NAMESPACE, base_domain="chaos.test", progress_deadline_seconds=600
    )
    slugs = [f"chaos-{i:04d}" for i in range(count)]
    Site.objects.bulk_create(
        Site(
            slug=slug,
            title=slug,
            owner_email=f"{slug}@example.com",
            theme_name="jesmond",
            theme_colour="#aa3355",
            image=V1,
            status=Site.Status.LIVE,
            canary=i == 0,
        )
        for i, slug in enumerate(slugs)
    )

    def apply(slug: str) -> None:
        spec = SiteSpec(
            slug=slug,
            title=slug,
            owner_email=f"{slug}@example.com",
            image=V1,
            theme_name="jesmond",
            theme_colour="#aa3355",
        )
        cluster.apply(deployment_manifest(spec, settings_, change_cause="chaos fleet"))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(apply, slugs))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        snaps = cluster.list_sites()
        if len(snaps) == count and all(s.state.done for s in snaps.values()):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the chaos fleet of {count} sites did not roll out")


def qcluster_env(config: ChaosConfig, sim: KubeSim, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_VERSION"}
    env.update(
        DEBUG="1",
        DATABASE_URL=database_url,
        KUBECONFIG=sim.kubeconfig_path,
        SITES_NAMESPACE=NAMESPACE,
        SITES_BASE_DOMAIN="chaos.test",
        KUBE_QPS="0",
        ROLLOUT_JOB_SECONDS=str(config.job_seconds),
        ROLLOUT_LEASE_SECONDS=str(config.lease_seconds),
        Q_WORKERS="2",
        LOG_LEVEL="WARNING",
    )
    return env


# --- driving rollouts ----------------------------------------------------------------------------


class Driver:
    """Plays staff and cron: creates each rollout, pauses, resumes, cancels, and, while a
    ticking rollout has no live lease (its job died), fires the every-minute schedule now
    rather than in a minute (the time the real schedule would take)."""

    def __init__(self, config: ChaosConfig, sim: KubeSim, injector: FaultInjector) -> None:
        self.config = config
        self.sim = sim
        self.injector = injector
        self.index = 0
        self.done: list[int] = []
        self.cron_runs = 0
        self._last_cron = 0.0

    def create(self, step: RolloutStep):
        from rollouts import services
        from rollouts.models import Rollout, RolloutTarget
        from sites.models import Site

        self.index += 1
        if step.kind == "rollback":
            parent = (
                Rollout.objects.filter(pk__in=self.done, kind=Rollout.Kind.UPGRADE)
                .filter(
                    targets__status__in=(
                        RolloutTarget.Status.SUCCEEDED,
                        RolloutTarget.Status.WAITING,
                    )
                )
                .order_by("-pk")
                .first()
            )
            if parent is None:
                return None
            return services.rollout_rollback(rollout=parent, actor=ACTOR, start=False)
        image = (
            f"subscribie/subscribie{BROKEN_MARK}{self.index}"
            if step.kind == "broken"
            else f"subscribie/subscribie:v{self.index + 1}"
        )
        timeout = (
            self.config.broken_wave_timeout if step.kind == "broken" else self.config.wave_timeout
        )
        return services.rollout_create(
            sites=Site.objects.all(),
            image=image,
            waves=step.waves,
            wave_timeout=timeout,
            actor=ACTOR,
            whole_fleet=True,
        )

    def cron(self, rollout) -> None:
        from django.utils import timezone
        from django_q.tasks import async_task

        from rollouts.models import Rollout

        lapsed = rollout.lease_until is None or rollout.lease_until < timezone.now()
        needs_engine = rollout.status in Rollout.TICKING_STATUSES or self.unsettled(rollout)
        if not needs_engine or not lapsed:
            return
        if time.monotonic() - self._last_cron < CRON_EVERY:
            return
        self._last_cron = time.monotonic()
        async_task("rollouts.tasks.tick_active_rollouts", task_name="chaos-cron")
        self.cron_runs += 1

    @staticmethod
    def unsettled(rollout) -> bool:
        """Finished, but with targets a killed tick left claimed (the engine settles them)."""
        from rollouts.models import Rollout, RolloutTarget

        return (
            rollout.status in Rollout.FINISHED_STATUSES
            and rollout.targets.filter(status=RolloutTarget.Status.PATCHING).exists()
        )

    def ended(self, rollout) -> bool:
        return rollout.status in rollout.FINISHED_STATUSES and not self.unsettled(rollout)

    @staticmethod
    def touched_fraction(rollout_id: int) -> float:
        """The share of the rollout's targets the engine has claimed (no longer pending)."""
        from rollouts.models import RolloutTarget

        targets = RolloutTarget.objects.filter(rollout_id=rollout_id)
        total = targets.count()
        touched = targets.exclude(status=RolloutTarget.Status.PENDING).count()
        return touched / total if total else 1.0

    def run(self, step: RolloutStep) -> StepResult:
        from rollouts import services
        from rollouts.models import Rollout

        rollout = self.create(step)
        if rollout is None:
            return StepResult(step, None, "nothing to roll back", finished=True)
        excused = set()
        if step.kind == "broken":
            excused = set(rollout.targets.filter(wave=0).values_list("site__slug", flat=True))
        self.sim.reset_availability([NAMESPACE])
        started = time.monotonic()
        if rollout.approval_required:  # whole-fleet upgrades: a second staff member approves
            from rollouts import approvals

            approvals.rollout_approve(rollout=rollout, actor=chaos_approver())
        else:
            services.rollout_start(rollout=rollout, actor=ACTOR)
        paused = step.pause_at is None
        cancelled = step.cancel_at is None
        while True:
            rollout.refresh_from_db()
            if self.ended(rollout):
                break
            if time.monotonic() - started > self.config.time_limit:
                break
            fraction = self.touched_fraction(rollout.pk)
            if (
                not paused
                and rollout.status == Rollout.Status.RUNNING
                and fraction >= step.pause_at
            ):
                paused = True
                self._pause(rollout, step.pause_for)
                continue
            if (
                not cancelled
                and rollout.status == Rollout.Status.RUNNING
                and fraction >= step.cancel_at
            ):
                cancelled = True
                with contextlib.suppress(services.RolloutError):  # it finished meanwhile
                    services.rollout_cancel(
                        rollout=rollout, actor=ACTOR, revert=step.kind == "cancel_revert"
                    )
                continue
            self.cron(rollout)
            time.sleep(0.2)
        rollout.refresh_from_db()
        if self.ended(rollout):
            self.done.append(rollout.pk)
        return StepResult(
            step,
            rollout.pk,
            rollout.status,
            rollout.status_message,
            round(time.monotonic() - started, 1),
            finished=self.ended(rollout),
            availability=self.sim.availability(NAMESPACE),
            excused=excused,
        )

    def _pause(self, rollout, seconds: float) -> None:
        from rollouts import services

        try:
            services.rollout_pause(rollout=rollout, actor=ACTOR)
        except services.RolloutError:
            return  # it moved on (finished) first
        time.sleep(seconds)
        services.rollout_resume(rollout=rollout, actor=ACTOR)


# --- the run -------------------------------------------------------------------------------------


def run_chaos(config: ChaosConfig, *, database_url: str, workdir: Path) -> ChaosReport:
    """Run one seed end to end and check the invariants (see module docstring)."""
    from django_q.brokers import get_broker

    from subscribie_admin.schedules import ensure_schedules
    from tests.fixtures.couchdb import CouchServer, ensure_couchserver_installed

    began = time.monotonic()
    steps = plan_rollouts(random.Random(f"{config.seed}/rollouts"), config.rollouts)
    schedule = fault_schedule(
        random.Random(f"{config.seed}/faults"), config.fault_gap, config.max_faults
    )
    feed_rng = random.Random(f"{config.seed}/signups")
    notes: list[str] = []
    ensure_couchserver_installed()
    with (
        KubeSim(ready_after=config.ready_after, fail_images=BROKEN_MARK) as sim,
        CouchServer(log_dir=workdir) as couch,
    ):
        feed = SignupFeed(couch, feed_rng)
        feed.create()
        feed.write_batch(config.signup_docs)
        deploy_fleet(sim, config.sites)
        ensure_schedules()
        get_broker().purge_queue()  # jobs another run left on a shared queue are not ours
        log = (workdir / "qcluster.log").open("a")
        qcluster = QCluster(
            qcluster_env(config, sim, database_url), log, int(sim.url.rsplit(":", 1)[1])
        )
        qcluster.start()
        sim.request_log.start_journal()
        injector = FaultInjector(sim, qcluster, feed, schedule)
        driver = Driver(config, sim, injector)
        try:
            results = _drive(driver, injector, qcluster, steps)
            final = feed.sync_until_done()
            if not final.ok:
                notes.append(f"final signup sync failed: {final.detail}")
        finally:
            injector.stop()
            qcluster.close()  # whatever happened, no cluster outlives the run
            log.close()
        notes += [f"fault error: {e}" for e in injector.errors]
        if injector.hurried:
            notes.append(f"{injector.hurried} faults injected after the last rollout ended")
        notes.append(
            f"qcluster started {qcluster.starts}x; schedule fired early {driver.cron_runs}x"
        )
        ok = sum(o.ok for o in feed.outcomes)
        notes.append(f"signup syncs: {ok} ok, {len(feed.outcomes) - ok} interrupted")
        checks = [
            invariants.rollouts_finished(
                {r.rollout_id: r.status for r in results if not r.finished and r.rollout_id}
            ),
            invariants.one_patch_per_direction(sim.request_log.journal(), NAMESPACE),
            invariants.images_agree(sim, NAMESPACE, V1),
            invariants.audit_trails(),
            invariants.availability(
                [(r.rollout_id, r.availability, r.excused) for r in results if r.rollout_id]
            ),
            invariants.signups_kept(feed.written, feed.deleted, feed.current_revs()),
            invariants.leases_honoured(
                config.lease_seconds, (workdir / "qcluster.log").read_text(errors="replace")
            ),
        ]
    return ChaosReport(
        config,
        results,
        dict(injector.counts),
        injector.log,
        checks,
        notes,
        round(time.monotonic() - began, 1),
    )


def _drive(
    driver: Driver, injector: FaultInjector, qcluster: QCluster, steps: list[RolloutStep]
) -> list[StepResult]:
    """Run every step with the injector on; then, faults off, give any rollout that ran out
    of time a last chance."""
    results: list[StepResult] = []
    try:
        injector.start()
        for step in steps:
            results.append(driver.run(step))
            if not results[-1].finished:
                break  # the next step needs this one finished; the invariant reports it
        else:
            if driver.config.max_faults is not None:
                injector.finish(FAULT_KINDS)
    finally:
        injector.stop()
        driver.sim.faults.clear()
        if not qcluster.alive:
            qcluster.start()
    for result in results:
        if not result.finished and result.rollout_id is not None:
            _finish_late(driver, result)
    return results


def _finish_late(driver: Driver, result: StepResult) -> None:
    """A rollout still active after its time limit: resume it if paused, wait once more."""
    from rollouts import services
    from rollouts.models import Rollout

    rollout = Rollout.objects.get(pk=result.rollout_id)
    if rollout.status == Rollout.Status.PAUSED:
        services.rollout_resume(rollout=rollout, actor=ACTOR)
    deadline = time.monotonic() + driver.config.time_limit / 2
    while time.monotonic() < deadline:
        rollout.refresh_from_db()
        if driver.ended(rollout):
            break
        driver.cron(rollout)
        time.sleep(0.2)
    result.finished = driver.ended(rollout)
    result.status = f"{rollout.status} (late)"


def replay_command(config: ChaosConfig) -> str:
    return (
        f"python -m bench chaos --seed {config.seed} --sites {config.sites} "
        f"--rollouts {config.rollouts} --faults {config.max_faults or 0}"
    )
