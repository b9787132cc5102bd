"""Fleet rollouts (upgrades and rollbacks) and their per-site targets.

State machines (DESIGN.md):
  Rollout: draft -> running <-> paused -> succeeded | halted | cancelled;
           halted -> reverting -> reverted.
           A draft that needs approval (``approval_required``: a whole-fleet upgrade, or one
           of more than ROLLOUT_APPROVAL_THRESHOLD targets) starts only once approved by a
           second staff member (``approved_by`` != ``created_by``); until then it can go
           draft -> declined (by an approver) | expired (``approval_expires_at`` passed) |
           cancelled. A draft with ``start_at`` is started by the every-minute schedule at
           that time, and only if approved when approval is required (rollouts/approvals.py).
           Within running, each wave: patch its targets -> all settled -> bake (``bake_seconds``,
           from ``bake_started_at``; 0 = none) -> next wave (or succeeded). A target that turns
           unavailable during the bake fails (succeeded -> failed) and the failure budget
           decides, as for any failure, whether the rollout halts (and with auto-revert,
           reverts).
  Target:  pending -> patching -> waiting -> succeeded | failed | skipped;
           with ``respect_windows``: pending <-> waiting_window (outside the site's maintenance
           window; ``window_opens_at`` says when it opens) -> pending -> patching ...;
           waiting_window -> skipped (halt, cancel, skip);
           succeeded -> failed (unavailable during the wave's bake);
           then possibly reverting -> reverted.
  A wave's deadline (``wave_timeout_seconds``) runs from ``wave_started_at``: the wave's start,
  its resume, or the latest window opening that released its sites, whichever is later.
Every status change is a compare-and-swap update (see rollouts/services.py and engine.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Rollout(models.Model):
    class Kind(models.TextChoices):
        UPGRADE = "upgrade", "upgrade"
        ROLLBACK = "rollback", "rollback"

    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        RUNNING = "running", "running"
        PAUSED = "paused", "paused"
        SUCCEEDED = "succeeded", "succeeded"
        HALTED = "halted", "halted"
        CANCELLED = "cancelled", "cancelled"
        REVERTING = "reverting", "reverting"
        REVERTED = "reverted", "reverted"
        DECLINED = "declined", "declined"
        EXPIRED = "expired", "approval expired"

    class Selection(models.TextChoices):
        ALL = "all", "whole fleet"
        SELECTED = "selected", "selected sites"

    ACTIVE_STATUSES = (Status.RUNNING, Status.PAUSED, Status.REVERTING)
    # Statuses in which the engine has work to do (ticks and the schedule drive these).
    TICKING_STATUSES = (Status.RUNNING, Status.REVERTING)
    FINISHED_STATUSES = (
        Status.SUCCEEDED,
        Status.CANCELLED,
        Status.REVERTED,
        Status.HALTED,
        Status.DECLINED,
        Status.EXPIRED,
    )

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.UPGRADE)
    image = models.CharField(max_length=255, blank=True, help_text="target image (upgrades)")
    selection = models.CharField(
        max_length=10,
        choices=Selection.choices,
        default=Selection.SELECTED,
        help_text="whole-fleet upgrades set the image new sites get (fleet_image)",
    )
    waves = models.CharField(max_length=200, default="1,10%,50%,100%")
    max_failures = models.CharField(max_length=10, default="0")
    wave_timeout_seconds = models.PositiveIntegerField(default=900)
    auto_revert = models.BooleanField(default=True)
    bake_seconds = models.PositiveIntegerField(
        default=0, help_text="a healthy wave must stay healthy this long before the next starts"
    )
    respect_windows = models.BooleanField(
        default=False, help_text="patch each site only inside its maintenance window"
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    status_message = models.TextField(blank=True)
    current_wave = models.PositiveIntegerField(default=0)
    wave_count = models.PositiveIntegerField(default=0)
    wave_started_at = models.DateTimeField(null=True, blank=True)
    # When the current wave was first seen settled and healthy (its bake runs from then).
    bake_started_at = models.DateTimeField(null=True, blank=True)
    left_out = models.JSONField(default=list, blank=True, help_text="[{slug, reason}]")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="rollbacks"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_progress_at = models.DateTimeField(null=True, blank=True)
    # Engine lease: only the job holding an unexpired lease ticks this rollout, so targets
    # found in `patching` when a lease is taken over belong to a crashed job.
    lease_owner = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Approval and schedule (rollouts/approvals.py). Invariant: a rollout with
    # approval_required leaves draft for running only with approved_at set, by an approver
    # other than created_by.
    approval_required = models.BooleanField(default=False)
    approval_expires_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approved_rollouts",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    start_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="scheduled start (None: at once)"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("start_rollout", "Can start fleet upgrades"),
            ("rollback_rollout", "Can roll back sites and rollouts"),
            ("control_rollout", "Can pause, resume and cancel rollouts"),
            ("approve_rollout", "Can approve or decline other staff members' rollouts"),
        ]

    def __str__(self) -> str:
        target = self.image or "previous images"
        return f"#{self.pk} {self.kind} to {target}"

    @property
    def awaiting_approval(self) -> bool:
        return self.status == self.Status.DRAFT and self.approval_required and not self.approved_at

    @property
    def phase(self) -> str:
        """The status as staff read it: a draft is awaiting approval, scheduled or a draft."""
        if self.awaiting_approval:
            return "awaiting approval"
        if self.status == self.Status.DRAFT and self.start_at:
            return "scheduled"
        return self.get_status_display()


class RolloutTarget(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        PATCHING = "patching", "patching"
        WAITING = "waiting", "waiting"
        WAITING_WINDOW = "waiting_window", "waiting for window"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        SKIPPED = "skipped", "skipped"
        REVERTING = "reverting", "reverting"
        REVERTED = "reverted", "reverted"
        REVERT_FAILED = "revert_failed", "revert failed"

    # Targets the engine still has to act on or wait for (a wave is settled without them).
    OPEN_STATUSES = (Status.PENDING, Status.WAITING_WINDOW, Status.PATCHING, Status.WAITING)
    # Targets not patched yet: a halt or a cancel skips these.
    UNPATCHED_STATUSES = (Status.PENDING, Status.WAITING_WINDOW)

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="targets")
    site = models.ForeignKey("sites.Site", on_delete=models.PROTECT, related_name="rollout_targets")
    wave = models.PositiveIntegerField()
    position = models.PositiveIntegerField(default=0, help_text="order within the rollout")
    # Read from the cluster when the target is patched, never assumed from the database.
    from_image = models.CharField(max_length=255, blank=True)
    from_revision = models.PositiveIntegerField(null=True, blank=True)
    to_image = models.CharField(max_length=255)
    generation = models.BigIntegerField(null=True, blank=True)
    revert_generation = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    # Token of the tick that claimed this target (compare-and-swap claims of a whole batch).
    claim = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    patched_at = models.DateTimeField(null=True, blank=True)
    window_opens_at = models.DateTimeField(
        null=True, blank=True, help_text="waiting_window: when the site's window next opens"
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rollout", "wave", "position"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "site"], name="rollout_target_unique_site")
        ]
        indexes = [models.Index(fields=["rollout", "wave", "status"])]

    def __str__(self) -> str:
        return f"{self.site_id} wave {self.wave} {self.status}"
