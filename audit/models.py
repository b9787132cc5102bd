"""The append-only audit history: who did what, to which site or rollout, with what result."""

from django.conf import settings
from django.db import models


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete an audit row."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit events are append-only; they cannot be updated")

    def delete(self):
        raise AppendOnlyError("audit events are append-only; they cannot be deleted")


class AuditEvent(models.Model):
    """One thing that happened. Invariant: rows are only ever inserted (see ``audit.record``)."""

    class Result(models.TextChoices):
        OK = "ok", "ok"
        ERROR = "error", "error"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
    )
    # Kept even when the user is deleted, and for non-human actors such as "system:cron".
    actor_label = models.CharField(max_length=150, db_index=True)
    action = models.CharField(max_length=64, db_index=True, help_text="dotted verb: site.approve")
    site = models.ForeignKey(
        "sites.Site", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rollout = models.ForeignKey(
        "rollouts.Rollout", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A readable name of the subject (site slug, signup id) that survives deletion of the row.
    subject = models.CharField(max_length=200, blank=True, db_index=True)
    data = models.JSONField(default=dict, blank=True, help_text="before/after values")
    result = models.CharField(max_length=8, choices=Result.choices, default=Result.OK)
    message = models.TextField(blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["action", "created_at"])]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.subject}"
        )

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise AppendOnlyError("audit events are append-only; they cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events are append-only; they cannot be deleted")
