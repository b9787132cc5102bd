"""Approvals and schedules of rollouts: who may let a big upgrade start, and when it starts.

Policy (``approval_needed``, pure): an upgrade of the whole fleet, or of more than
``ROLLOUT_APPROVAL_THRESHOLD`` sites, needs approval. Rollbacks never do: they put sites back
on images they ran before, and are the way out of a bad upgrade, which must not wait.

Invariants:
- Enforced here, not in the admin: the approver must be an active staff user holding
  ``rollouts.approve_rollout`` and must not be the rollout's creator; a label such as
  ``system:cli`` cannot approve. ``services.rollout_start`` refuses an unapproved rollout that
  needs approval, whoever calls it.
- Approve, decline and expire are compare-and-swap updates of a draft, audited in the same
  transaction (``rollout.approve``, ``rollout.decline``, ``rollout.expire``).
- Time comes in as ``now`` so the schedule and tests control the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import audit
from rollouts import notices
from rollouts.models import Rollout
from rollouts.services import RolloutError, rollout_start, skip_unpatched_targets

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

APPROVE_PERM = "rollouts.approve_rollout"
SCHEDULE_ACTOR = "system:schedule"


class ApprovalError(RolloutError):
    """An approval or decline that is not allowed (who, or in which state)."""


def approval_threshold() -> int:
    return int(getattr(settings, "ROLLOUT_APPROVAL_THRESHOLD", 100))


def approvals_on() -> bool:
    return bool(getattr(settings, "ROLLOUT_APPROVAL_REQUIRED", True))


def approval_hours() -> float:
    return float(getattr(settings, "ROLLOUT_APPROVAL_HOURS", 24))


def approval_needed(*, kind: str, whole_fleet: bool, targets: int, threshold: int) -> bool:
    """Whether a rollout of ``targets`` sites needs a second staff member's approval."""
    if kind != Rollout.Kind.UPGRADE:
        return False
    return whole_fleet or targets > threshold


def approval_fields(*, kind: str, whole_fleet: bool, targets: int, now: datetime) -> dict:
    """The approval fields a new rollout gets (for ``Rollout.objects.create``)."""
    needed = approvals_on() and approval_needed(
        kind=kind, whole_fleet=whole_fleet, targets=targets, threshold=approval_threshold()
    )
    return {
        "approval_required": needed,
        "approval_expires_at": now + timedelta(hours=approval_hours()) if needed else None,
    }


def check_can_start(rollout: Rollout) -> None:
    """Raise RolloutError if ``rollout`` needs approval and has none (called by rollout_start)."""
    if rollout.approval_required and not rollout.approved_at:
        raise RolloutError(
            f"rollout #{rollout.pk} needs approval before it starts: a second staff member "
            f"with the {APPROVE_PERM} permission must approve it (admin, or manage.py "
            f"rollout_control {rollout.pk} approve --as USER); it was not started"
        )


def _check_reviewer(rollout: Rollout, user: AbstractBaseUser | str | None, verb: str) -> None:
    if user is None or isinstance(user, str):
        raise ApprovalError(
            f"rollout #{rollout.pk} can only be {verb} by a staff member (--as USER), "
            f"not {audit.actor_label_for(user)}"
        )
    if not (user.is_active and user.is_staff and user.has_perm(APPROVE_PERM)):
        raise ApprovalError(
            f"{user.get_username()} may not approve or decline rollouts (needs the staff "
            f"flag and the {APPROVE_PERM} permission)"
        )


def _pending(rollout: Rollout, verb: str, now: datetime) -> None:
    """Raise unless ``rollout`` is a draft awaiting approval whose approval has not expired."""
    rollout.refresh_from_db()
    if rollout.status != Rollout.Status.DRAFT or not rollout.approval_required:
        raise ApprovalError(
            f"rollout #{rollout.pk} is {rollout.phase}, not awaiting approval; it was not {verb}"
        )
    if rollout.approved_at:
        raise ApprovalError(
            f"rollout #{rollout.pk} was already approved by "
            f"{rollout.approved_by or 'a deleted user'}; it was not {verb}"
        )
    if rollout.approval_expires_at and rollout.approval_expires_at <= now:
        rollouts_expire_unapproved(now=now)
        raise ApprovalError(f"rollout #{rollout.pk}'s approval expired; it was not {verb}")


def rollout_approve(
    *, rollout: Rollout, actor: AbstractBaseUser, now: datetime | None = None,
    enqueue: bool = True,
) -> Rollout:  # fmt: skip
    """Approve a draft awaiting approval; start it now unless it is scheduled for later.

    Refused (ApprovalError) for the creator, a user without the permission, a system label, a
    rollout not awaiting approval, or one whose approval expired. Approving a scheduled
    upgrade tells its sites' owners when they will be upgraded.
    """
    now = now or timezone.now()
    _check_reviewer(rollout, actor, "approved")
    if rollout.created_by_id is not None and rollout.created_by_id == actor.pk:
        raise ApprovalError(
            f"rollout #{rollout.pk} was created by {actor.get_username()}: a second staff "
            "member must approve it; it was not approved"
        )
    _pending(rollout, "approved", now)
    with transaction.atomic():
        changed = Rollout.objects.filter(
            pk=rollout.pk, status=Rollout.Status.DRAFT, approval_required=True,
            approved_at__isnull=True,
        ).update(approved_by=actor, approved_at=now)  # fmt: skip
        if changed != 1:
            raise ApprovalError(f"rollout #{rollout.pk} changed meanwhile; it was not approved")
        rollout.refresh_from_db()
        audit.record(
            action="rollout.approve", actor=actor, rollout=rollout,
            data={"created_by": rollout.actor_label,
                  "start_at": rollout.start_at.isoformat() if rollout.start_at else None},
        )  # fmt: skip
        if rollout.start_at is None or rollout.start_at <= now:
            rollout_start(rollout=rollout, actor=actor, enqueue=enqueue)
        else:
            notices.upgrade_scheduled(rollout=rollout)
    return rollout


def rollout_decline(
    *, rollout: Rollout, actor: AbstractBaseUser, reason: str = "", now: datetime | None = None
) -> Rollout:
    """Decline a draft awaiting approval: draft -> declined; its targets are skipped."""
    now = now or timezone.now()
    _check_reviewer(rollout, actor, "declined")
    _pending(rollout, "declined", now)
    message = f"declined by {actor.get_username()}" + (f": {reason}" if reason else "")
    with transaction.atomic():
        changed = Rollout.objects.filter(
            pk=rollout.pk, status=Rollout.Status.DRAFT, approved_at__isnull=True
        ).update(status=Rollout.Status.DECLINED, status_message=message, finished_at=now)
        if changed != 1:
            raise ApprovalError(f"rollout #{rollout.pk} changed meanwhile; it was not declined")
        skip_unpatched_targets(rollout, why="rollout declined", now=now)
        rollout.refresh_from_db()
        audit.record(
            action="rollout.decline", actor=actor, rollout=rollout, message=message,
            data={"created_by": rollout.actor_label},
        )  # fmt: skip
    return rollout


def rollouts_expire_unapproved(*, now: datetime | None = None) -> list[int]:
    """Drafts still awaiting approval past ``approval_expires_at`` -> expired. Returns ids."""
    now = now or timezone.now()
    expired: list[int] = []
    due = Rollout.objects.filter(
        status=Rollout.Status.DRAFT, approval_required=True, approved_at__isnull=True,
        approval_expires_at__lte=now,
    )  # fmt: skip
    for rollout in due:
        message = (
            f"approval expired: not approved within {approval_hours():g} hours "
            f"(by {rollout.approval_expires_at:%Y-%m-%d %H:%M} UTC)"
        )
        with transaction.atomic():
            changed = Rollout.objects.filter(
                pk=rollout.pk, status=Rollout.Status.DRAFT, approved_at__isnull=True
            ).update(status=Rollout.Status.EXPIRED, status_message=message, finished_at=now)
            if changed:
                skip_unpatched_targets(rollout, why="approval expired", now=now)
                audit.record(
                    action="rollout.expire", actor=SCHEDULE_ACTOR, rollout=rollout,
                    ok=False, message=message,
                )  # fmt: skip
                expired.append(rollout.pk)
    return expired


def rollouts_start_due(*, now: datetime | None = None, enqueue: bool = True) -> list[int]:
    """Start scheduled drafts whose ``start_at`` has come, if approved when approval is needed.

    Returns the ids started. A rollout that cannot start (e.g. it lost a race) is left alone.
    """
    now = now or timezone.now()
    due = Rollout.objects.filter(status=Rollout.Status.DRAFT, start_at__lte=now).filter(
        Q(approval_required=False) | Q(approved_at__isnull=False)
    )
    started: list[int] = []
    for rollout in due.order_by("start_at", "id"):
        try:
            rollout_start(rollout=rollout, actor=SCHEDULE_ACTOR, enqueue=enqueue)
        except RolloutError:
            continue
        started.append(rollout.pk)
    return started


def rollout_created(*, rollout: Rollout) -> None:
    """Hook for a new draft: ask staff for approval, or tell owners of a scheduled upgrade."""
    if rollout.approval_required:
        notices.approval_needed(rollout=rollout)
    elif rollout.start_at is not None:
        notices.upgrade_scheduled(rollout=rollout)
