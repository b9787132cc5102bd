"""The one function that writes audit history."""

from __future__ import annotations

from collections.abc import Iterable
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


def event_columns(
    *,
    action: str,
    actor: AbstractBaseUser | str | None,
    site: Any = None,
    rollout: Any = None,
    subject: str = "",
    data: dict[str, Any] | None = None,
    ok: bool = True,
    message: str = "",
) -> dict[str, Any]:
    """The column values of one event, by attribute name (``site_id``, not ``site``): the one
    place that decides what an event row holds. ``created_at`` is set when it is saved."""
    from audit.models import AuditEvent

    if "." not in action:
        raise ValueError(
            f"audit action must be a dotted verb such as 'site.approve', not {action!r}"
        )
    user = None if actor is None or isinstance(actor, str) else actor
    if not subject:
        subject = getattr(site, "slug", "") or (f"rollout #{rollout.pk}" if rollout else "")
    return {
        "action": action,
        "actor_id": _saved_pk(user),
        "actor_label": actor_label_for(actor),
        "site_id": _saved_pk(site),
        "rollout_id": _saved_pk(rollout),
        "subject": subject[:200],
        "data": data or {},
        "result": AuditEvent.Result.OK if ok else AuditEvent.Result.ERROR,
        "message": message,
    }


def _saved_pk(obj: Any) -> Any:
    if obj is None:
        return None
    if obj.pk is None:  # what ``save`` refuses for an unsaved related object
        raise ValueError(f"audit event about an unsaved {type(obj).__name__}")
    return obj.pk


def build_event(**event: Any) -> AuditEvent:
    """An unsaved AuditEvent (arguments as for ``event_columns``)."""
    from audit.models import AuditEvent

    return AuditEvent(**event_columns(**event))


def record(**event: Any) -> AuditEvent:
    """Append one AuditEvent and return it (arguments as for ``build_event``).

    Call it inside the same transaction as the change it describes, so the history and the
    state can never disagree. ``actor`` is a user, a label such as ``"system:cron"``, or None.
    """
    built = build_event(**event)
    built.save(force_insert=True)
    return built


def record_many(events: Iterable[dict[str, Any]]) -> int:
    """Append many events with one multi-row INSERT (fleet-wide steps); returns how many.

    Must run inside ``transaction.atomic()``: the changes it describes are in the same
    transaction. ``bulk_create`` would compile every field of every row through the ORM, which
    costs more than the wave it audits; the rows are not even model instances (building
    thousands of those was a tenth of a fleet upgrade's CPU), only their column values.
    """
    from audit.models import AuditEvent
    from subscribie_admin.bulk_insert import insert_rows, new_row

    return insert_rows(AuditEvent, [new_row(AuditEvent, **event_columns(**e)) for e in events])
