"""django-q2 jobs for rollouts: thin wrappers that take ids and call the engine or a service.

Chains: ``tick_rollout`` runs the engine for at most ``ROLLOUT_JOB_SECONDS`` under a lease named
after its chain, then re-enqueues itself with the same chain while the rollout still has work.
The lease outlives the gap between two jobs of a chain, so the every-minute schedule
(``tick_active_rollouts``) only starts a new chain when the lease has expired, i.e. when the
chain was lost (job dropped, worker killed). A duplicate job cannot take a live lease and ends.
"""

from __future__ import annotations

import uuid

from django.conf import settings

from rollouts import approvals, engine, services
from rollouts.models import Rollout


def _job_seconds() -> float:
    return float(getattr(settings, "ROLLOUT_JOB_SECONDS", 30))


def tick_rollout(rollout_id: int, chain: str = "") -> str:
    """Run the engine on one rollout for a bounded time; continue the chain if work remains."""
    chain = chain or uuid.uuid4().hex
    run = engine.run_until_settled(
        rollout_id,
        max_seconds=_job_seconds(),
        lease_owner=chain,
        give_way=True,
        keep_lease=True,
    )
    if run.busy:
        return f"rollout #{rollout_id}: another job holds the lease"
    if run.rollout.status in Rollout.TICKING_STATUSES:
        from django_q.tasks import async_task

        async_task(
            "rollouts.tasks.tick_rollout", rollout_id, chain, task_name=f"rollout-{rollout_id}"
        )
    return f"rollout #{rollout_id}: {run.rollout.status}"


def tick_active_rollouts() -> str:
    """Scheduled every minute: reap stalled rollouts, restart lost chains, expire unapproved
    rollouts and start scheduled ones whose time has come."""
    reaped = services.rollout_reap_stale()
    expired = approvals.rollouts_expire_unapproved()
    started = approvals.rollouts_start_due()
    restarted = 0
    from django_q.tasks import async_task

    for rollout_id in services.rollouts_needing_tick():
        async_task("rollouts.tasks.tick_rollout", rollout_id, task_name=f"rollout-{rollout_id}")
        restarted += 1
    return (
        f"reaped {len(reaped)}, restarted {restarted}, expired {len(expired)}, "
        f"started {len(started)}"
    )
