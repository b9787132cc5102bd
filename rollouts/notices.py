"""Which email notices a rollout owes, and to whom (sending: notices/services.py).

- ``upgrade_scheduled``: each owner of a site in a scheduled upgrade, once it is cleared to
  start (approved, or needing no approval): when, and to which image.
- ``sites_reverted``: each owner of a site that failed in the rollout and was put back on its
  previous image (sites reverted only because others failed are not told: theirs never broke).
- ``approval_needed``: staff who may approve (``rollouts.approve_rollout``), except the creator.
- ``rollout_halted``: staff who may control rollouts (``rollouts.control_rollout``).
Staff recipients are active staff users with an email address and the permission, plus every
address in ``NOTICE_STAFF_EMAILS``.

Every hook is called inside the transaction of the change it reports and never raises: a
notice that cannot be recorded is logged and skipped, never a reason to stop a rollout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse

from notices.models import Notice
from notices.services import Draft, notices_create, render
from rollouts.models import Rollout, RolloutTarget

logger = logging.getLogger(__name__)
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"  # where permissions are stored


def _never_fail(what: str, hook: Callable[[], object]) -> None:
    """Run ``hook`` in a savepoint; log and swallow any error (the rollout goes on)."""
    try:
        with transaction.atomic():
            hook()
    except Exception:
        logger.exception("could not record %s notices", what)


def admin_url(rollout: Rollout) -> str:
    path = reverse("admin:rollouts_rollout_change", args=[rollout.pk])
    return f"{getattr(settings, 'ADMIN_BASE_URL', '').rstrip('/')}{path}"


def staff_addresses(perm: str, *, exclude_user_id: int | None = None) -> list[str]:
    """Emails of active staff holding ``perm`` (directly, by group or as superuser), plus
    ``NOTICE_STAFF_EMAILS``."""
    # One query (Django's with_perm: direct, by group or superuser), not has_perm per user.
    users = (
        get_user_model()
        .objects.with_perm(perm, is_active=True, backend=MODEL_BACKEND)
        .filter(is_staff=True)
        .exclude(email="")
    )
    if exclude_user_id is not None:
        users = users.exclude(pk=exclude_user_id)
    found = set(users.values_list("email", flat=True))
    found.update(getattr(settings, "NOTICE_STAFF_EMAILS", []))
    return sorted(found)


def _staff_notice(kind: str, rollout: Rollout, recipients: list[str], **context) -> None:
    if not recipients:
        logger.warning("no staff address for %s notice of rollout #%s", kind, rollout.pk)
        return
    ((subject, body),) = render(kind, [{"rollout": rollout, "admin_url": admin_url(rollout),
                                        **context}])  # fmt: skip
    notices_create(kind=kind, rollout=rollout, drafts=[Draft(None, recipients, subject, body)])


def approval_needed(*, rollout: Rollout) -> None:
    def hook() -> None:
        recipients = staff_addresses(
            "rollouts.approve_rollout", exclude_user_id=rollout.created_by_id
        )
        _staff_notice(
            Notice.Kind.APPROVAL_NEEDED, rollout, recipients, targets=rollout.targets.count()
        )

    _never_fail("approval-needed", hook)


def rollout_halted(*, rollout: Rollout) -> None:
    def hook() -> None:
        current = Rollout.objects.get(pk=rollout.pk)
        _staff_notice(
            Notice.Kind.ROLLOUT_HALTED,
            current,
            staff_addresses("rollouts.control_rollout"),
            reverting=current.status == Rollout.Status.REVERTING,
        )

    _never_fail("rollout-halted", hook)


def _owner_notices(kind: str, rollout: Rollout, targets) -> None:
    targets = [t for t in targets if t.site.owner_email]
    rendered = render(kind, ({"rollout": rollout, "site": t.site, "target": t} for t in targets))
    notices_create(
        kind=kind,
        rollout=rollout,
        drafts=[
            Draft(t.site, [t.site.owner_email], subject, body)
            for t, (subject, body) in zip(targets, rendered, strict=True)
        ],
    )


def upgrade_scheduled(*, rollout: Rollout) -> None:
    """Owners of a scheduled upgrade's sites: call once it is cleared to start."""
    if rollout.kind != Rollout.Kind.UPGRADE or rollout.start_at is None:
        return

    def hook() -> None:
        targets = rollout.targets.filter(status=RolloutTarget.Status.PENDING).select_related("site")
        _owner_notices(Notice.Kind.UPGRADE_SCHEDULED, rollout, targets)

    _never_fail("upgrade-scheduled", hook)


def sites_reverted(*, rollout: Rollout) -> None:
    """Owners of sites that failed in ``rollout`` and are back on their previous image.

    A reverted target keeps the ``last_error`` of its failure (a revert that succeeds does not
    clear it), which is what tells a site that failed from one reverted because others did.
    """

    def hook() -> None:
        targets = (
            rollout.targets.filter(status=RolloutTarget.Status.REVERTED)
            .exclude(last_error="")
            .select_related("site")
        )
        _owner_notices(Notice.Kind.SITE_REVERTED, rollout, targets)

    _never_fail("site-reverted", hook)
