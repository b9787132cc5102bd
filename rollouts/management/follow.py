"""Shared by the rollout commands: resolve the actor, follow a rollout, report its result."""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from tqdm import tqdm

from cluster.gateway import Cluster
from rollouts import engine, selectors
from rollouts.models import Rollout

CLI_ACTOR = "system:cli"


def resolve_actor(username: str | None):
    """The user named by ``--as``, or the ``system:cli`` label."""
    if not username:
        return CLI_ACTOR
    try:
        return get_user_model().objects.get_by_natural_key(username)
    except get_user_model().DoesNotExist:
        raise CommandError(f"no such user: {username}") from None


def describe(rollout: Rollout) -> str:
    progress = selectors.rollout_progress(rollout)
    counts = ", ".join(f"{status} {n}" for status, n in sorted(progress.counts.items()))
    lines = [
        f"rollout {rollout.pk}: {rollout.kind} {rollout.image or '(previous images)'} "
        f"[{rollout.status}] wave {rollout.current_wave + 1}/{rollout.wave_count}",
        f"  targets: {progress.total} ({counts or 'none'})",
    ]
    for wave in progress.waves:
        detail = ", ".join(f"{status} {n}" for status, n in sorted(wave.counts.items()))
        lines.append(f"  wave {wave.number}: {wave.settled}/{wave.total} settled ({detail})")
    if rollout.approval_required:
        if rollout.approved_at:
            lines.append(f"  approved by {rollout.approved_by or 'a deleted user'}")
        elif rollout.status == Rollout.Status.DRAFT:
            lines.append(
                f"  awaiting approval until {rollout.approval_expires_at:%Y-%m-%d %H:%M:%S %Z}"
            )
    if rollout.start_at and rollout.status == Rollout.Status.DRAFT:
        lines.append(f"  scheduled to start at {rollout.start_at:%Y-%m-%d %H:%M:%S %Z}")
    bake = selectors.wave_bake(rollout)
    if bake is not None:
        lines.append(f"  wave {bake.wave}: {bake.countdown}")
    if rollout.status_message:
        lines.append(f"  {rollout.status_message}")
    return "\n".join(lines)


def follow(
    rollout: Rollout,
    *,
    sync: bool,
    bar: bool,
    stdout,
    poll: float = 0.5,
    qps: float | None = None,
) -> Rollout:
    """Run the engine in-process (``sync``) or watch the database until the rollout settles.

    Shows a tqdm bar (settled targets) when ``bar``. Returns the rollout as it ended up.
    In-process, waves are gated on the cluster's events (``engine.run_until_settled``), with
    ``qps`` overriding ``KUBE_QPS``. Following a rollout the qcluster runs, the rollout row
    is read every ``MIN_POLL`` s while it moves, backing off to ``poll`` while it does not, so
    the command ends as soon as the rollout does.
    """
    total = rollout.targets.count()
    progress = tqdm(total=total, unit="site", disable=not bar, file=stdout._out, leave=True)

    def update(current: Rollout) -> None:
        settled = selectors.rollout_progress(current).settled
        progress.n = settled
        progress.set_postfix_str(f"{current.status} wave {current.current_wave + 1}")
        progress.refresh()

    try:
        if sync:
            cluster = Cluster.from_settings(qps=qps) if qps is not None else None
            rollout = engine.run_until_settled(
                rollout.pk, progress=update, poll=0.2, cluster=cluster
            ).rollout
        else:
            rollout = _follow_database(rollout, update, poll)
    finally:
        progress.close()
    return rollout


MIN_POLL = 0.02


def _follow_database(rollout: Rollout, update, poll: float) -> Rollout:
    """Follow a rollout run elsewhere through its row (status, wave, last progress)."""
    row = Rollout.objects.filter(pk=rollout.pk)
    fields = ("status", "current_wave", "last_progress_at")
    seen = None
    interval = MIN_POLL
    while True:
        state = row.values_list(*fields).first()
        if state != seen:
            seen = state
            interval = MIN_POLL
            rollout.refresh_from_db()
            update(rollout)
            if rollout.status in Rollout.FINISHED_STATUSES or rollout.status == "paused":
                return rollout
        else:
            interval = min(interval * 2, poll)
        time.sleep(interval)


def finish(rollout: Rollout, stdout) -> None:
    """Print the outcome; exit non-zero (CommandError) unless the rollout succeeded."""
    rollout.refresh_from_db()
    stdout.write(describe(rollout))
    if rollout.status != Rollout.Status.SUCCEEDED:
        raise CommandError(f"rollout {rollout.pk} ended {rollout.status}")
