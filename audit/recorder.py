"""The one function that writes audit history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from audit.models import AuditEvent


def actor_label_for(actor: AbstractBaseUser | str | None) -> str:
    """A stable text name for an actor: a username, or a ``system:...`` label."""
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return actor.get_username()


def record(
    *,
    action: str,
    actor: AbstractBaseUser | str | None,
    site: Any = None,
    rollout: Any = None,
    subject: str = "",
    data: dict[str, Any] | None = None,
    ok: bool = True,
    message: str = "",
) -> AuditEvent:
    """Append one AuditEvent and return it.

    Call it inside the same transaction as the change it describes, so the history and the
    state can never disagree. ``actor`` is a user, a label such as ``"system:cron"``, or None.
    """
    from audit.models import AuditEvent

    if "." not in action:
        raise ValueError(
            f"audit action must be a dotted verb such as 'site.approve', not {action!r}"
        )
    user = None if actor is None or isinstance(actor, str) else actor
    if not subject:
        subject = getattr(site, "slug", "") or (f"rollout #{rollout.pk}" if rollout else "")
    return AuditEvent.objects.create(
        action=action,
        actor=user,
        actor_label=actor_label_for(actor),
        site=site,
        rollout=rollout,
        subject=subject[:200],
        data=data or {},
        result=AuditEvent.Result.OK if ok else AuditEvent.Result.ERROR,
        message=message,
    )
