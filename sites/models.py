"""Signups imported from CouchDB, the sites made from them, and the sync checkpoint.

Models hold data and small derived properties only: no network calls in save() or signals.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from sites.windows import WindowError, parse_window


def validate_maintenance_window(value: str) -> None:
    """Model-field validator: blank, or a window :func:`sites.windows.parse_window` accepts."""
    if value.strip():
        try:
            parse_window(value)
        except WindowError as exc:
            raise ValidationError(str(exc)) from None


class Signup(models.Model):
    """One CouchDB signup document (per ``_id``), kept whole whatever its validity.

    Invariant: a document read from the feed is never dropped; an invalid one is stored with
    status ``rejected`` and its reasons.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending review"
        REJECTED = "rejected", "rejected"
        APPROVED = "approved", "approved"
        WITHDRAWN = "withdrawn", "withdrawn"

    class WriteBack(models.TextChoices):
        NONE = "", "nothing to write"
        PENDING = "pending", "pending"
        DONE = "done", "written"

    couch_id = models.CharField(max_length=255, unique=True)
    couch_rev = models.CharField(max_length=64, blank=True)
    raw = models.JSONField(default=dict, help_text="the document as read from CouchDB")
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    reasons = models.JSONField(default=list, blank=True)
    # Validated values (blank when the document was invalid).
    company_name = models.CharField(max_length=200, blank=True)
    requested_name = models.CharField(
        max_length=63, blank=True, db_index=True, help_text="site name; staff may edit it"
    )
    owner_email = models.CharField(max_length=254, blank=True)
    custom_domain = models.CharField(max_length=253, blank=True)
    theme_name = models.CharField(max_length=40, blank=True)
    theme_colour = models.CharField(max_length=7, blank=True)
    maintenance_window = models.CharField(
        max_length=100, blank=True, help_text="canonical text, e.g. 'Sun 02:00-05:00 Europe/London'"
    )
    # A newer revision of an already approved document, waiting for staff.
    pending_change = models.JSONField(null=True, blank=True)
    writeback = models.CharField(max_length=8, choices=WriteBack.choices, default="", blank=True)
    writeback_error = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        permissions = [
            ("approve_signup", "Can approve signups"),
            ("reject_signup", "Can reject signups"),
        ]

    def __str__(self) -> str:
        return self.company_name or self.couch_id


class Site(models.Model):
    """One customer website: a Deployment, Service, Ingress and Secret named ``slug``.

    Invariant: rows are never deleted (status ``deleted`` keeps them for audit); ``slug`` is
    the Kubernetes object name and never changes once deployed.
    """

    class Status(models.TextChoices):
        APPROVED = "approved", "approved"
        DEPLOYING = "deploying", "deploying"
        LIVE = "live", "live"
        FAILED = "failed", "failed"
        SUSPENDED = "suspended", "suspended"
        DELETING = "deleting", "deleting"
        DELETED = "deleted", "deleted"
        MISSING = "missing", "missing from cluster"

    slug = models.SlugField(max_length=63, unique=True)
    title = models.CharField(max_length=100)
    owner_email = models.CharField(max_length=254)
    custom_domain = models.CharField(max_length=253, blank=True)
    custom_domain_verified = models.BooleanField(default=False)
    theme_name = models.CharField(max_length=40)
    theme_colour = models.CharField(max_length=7)
    image = models.CharField(max_length=255, help_text="the image this site should run")
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    status_message = models.TextField(blank=True)
    canary = models.BooleanField(default=False, help_text="upgraded in the first wave")
    hold_reason = models.CharField(max_length=200, blank=True)
    hold_until = models.DateTimeField(null=True, blank=True)
    maintenance_window = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_maintenance_window],
        help_text="weekly, in the site's time zone, e.g. 'Sun 02:00-05:00 Europe/London'",
    )
    # What the cluster last reported (status refresh).
    observed_image = models.CharField(max_length=255, blank=True)
    observed_revision = models.PositiveIntegerField(null=True, blank=True)
    ready_replicas = models.PositiveIntegerField(default=0)
    desired_replicas = models.PositiveIntegerField(default=1)
    last_generation = models.BigIntegerField(null=True, blank=True)
    last_deployed_at = models.DateTimeField(null=True, blank=True)
    observed_at = models.DateTimeField(null=True, blank=True)
    signup = models.ForeignKey(
        Signup, null=True, blank=True, on_delete=models.SET_NULL, related_name="sites"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        permissions = [
            ("deploy_site", "Can deploy and redeploy sites"),
            ("suspend_site", "Can suspend and resume sites"),
            ("remove_site", "Can delete sites from the cluster"),
            ("hold_site", "Can put sites on hold"),
            ("verify_domain", "Can verify custom domains"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["custom_domain"],
                condition=~models.Q(custom_domain=""),
                name="site_custom_domain_unique",
            )
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def secret_name(self) -> str:
        """Only the reference is stored; the values live in the cluster Secret."""
        return f"{self.slug}-secrets"

    def on_hold(self, now=None) -> bool:
        if not self.hold_reason:
            return False
        return self.hold_until is None or self.hold_until > (now or timezone.now())

    @property
    def image_drift(self) -> bool:
        return bool(self.observed_image) and self.observed_image != self.image


class SyncCheckpoint(models.Model):
    """Where the CouchDB ``_changes`` reader resumes. ``last_seq`` is opaque (int or string)."""

    database = models.CharField(max_length=200, unique=True)
    last_seq = models.JSONField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    locked_by = models.CharField(max_length=100, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.database} @ {self.last_seq}"


class JobLease(models.Model):
    """A named lease: at most one holder of ``name`` until ``until`` (see sites/leases.py).

    Used for singleton jobs such as the deploy watcher, so a burst of deploys starts one
    watcher rather than one per site.
    """

    name = models.CharField(max_length=100, unique=True)
    owner = models.CharField(max_length=100, blank=True)
    until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} held by {self.owner or 'nobody'}"
