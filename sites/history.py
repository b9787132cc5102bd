"""A site's history for its admin page: every image it ran, when, through what, and by whom.

Read-only, two queries whatever the site's age: the deploys from the audit history (the image
the approval or a redeploy gave it) and the site's targets in every rollout. Newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from audit.models import AuditEvent
from rollouts.models import Rollout, RolloutTarget

HISTORY_LIMIT = 100
# Audit actions that (re)deploy a site with the image in their ``data``.
DEPLOY_ACTIONS = ("signup.approve", "site.deploy")


@dataclass(frozen=True)
class ImageChange:
    """One step in the site's image history."""

    at: datetime | None
    image: str
    from_image: str
    how: str  # "deploy", "upgrade", "rollback"
    outcome: str  # the target's status for rollouts; "requested" for deploys
    actor: str
    rollout_id: int | None = None
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "revert_failed", "revert failed")


def site_image_history(site_id: int, limit: int = HISTORY_LIMIT) -> list[ImageChange]:
    deploys = (
        AuditEvent.objects.filter(site_id=site_id, action__in=DEPLOY_ACTIONS)
        .only("created_at", "action", "actor_label", "data")
        .order_by("-created_at", "-id")[:limit]
    )
    targets = (
        RolloutTarget.objects.filter(site_id=site_id)
        .select_related("rollout")
        .only(
            *("status", "from_image", "to_image", "patched_at", "finished_at", "last_error"),
            *("rollout__id", "rollout__kind", "rollout__actor_label", "rollout__created_at"),
        )
        .order_by("-id")[:limit]
    )
    changes = [
        ImageChange(
            at=event.created_at,
            image=str((event.data or {}).get("image", "")),
            from_image="",
            how="deploy",
            outcome="requested",
            actor=event.actor_label,
        )
        for event in deploys
    ]
    for target in targets:
        rollout = target.rollout
        changes.append(
            ImageChange(
                at=target.patched_at or target.finished_at or rollout.created_at,
                image=target.to_image,
                from_image=target.from_image,
                how="rollback" if rollout.kind == Rollout.Kind.ROLLBACK else "upgrade",
                outcome=target.get_status_display(),
                actor=rollout.actor_label,
                rollout_id=rollout.pk,
                error=target.last_error,
            )
        )
    changes.sort(key=lambda change: change.at.timestamp() if change.at else 0, reverse=True)
    return changes[:limit]
