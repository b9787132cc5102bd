"""Email notices to site owners and staff about rollouts (see notices/services.py).

Notice: pending -> sending -> sent | pending (retried after a backoff) | failed (gave up).
Invariant: at most one notice per (rollout, site, kind), and one per (rollout, kind) for staff
notices (site is null); the database enforces it, so a hook that runs twice sends nothing twice.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Notice(models.Model):
    class Kind(models.TextChoices):
        UPGRADE_SCHEDULED = "upgrade_scheduled", "owner: upgrade scheduled"
        SITE_REVERTED = "site_reverted", "owner: site failed and was reverted"
        APPROVAL_NEEDED = "approval_needed", "staff: rollout needs approval"
        ROLLOUT_HALTED = "rollout_halted", "staff: rollout halted"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed (gave up)"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    rollout = models.ForeignKey(
        "rollouts.Rollout", on_delete=models.CASCADE, related_name="notices"
    )
    site = models.ForeignKey(
        "sites.Site", null=True, blank=True, on_delete=models.CASCADE, related_name="notices"
    )
    recipients = models.JSONField(default=list)
    subject = models.CharField(max_length=255)
    body = models.TextField()
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(db_index=True)
    # A sender's claim: a notice left in `sending` past this time belonged to a dead job.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rollout", "site", "kind"],
                condition=Q(site__isnull=False),
                name="notice_once_per_site_rollout_kind",
            ),
            models.UniqueConstraint(
                fields=["rollout", "kind"],
                condition=Q(site__isnull=True),
                name="notice_once_per_rollout_kind_for_staff",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.rollout_id} {self.site_id or 'staff'} {self.status}"
