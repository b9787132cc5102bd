"""Email notices: record them (once), send them after commit, retry failed sends.

Invariants:
- ``notices_create`` runs inside the caller's transaction; the rows are the record of what is
  owed, unique per (rollout, site, kind) in the database (ignored duplicates), and the send
  job is enqueued with ``transaction.on_commit``.
- Sending never happens inside a database transaction and never raises: a failure is stored
  on the row (attempts, last_error, next_attempt_at with exponential backoff) and audited; the
  every-minute schedule (``notices.tasks.send_due_notices``) retries it, until
  NOTICE_MAX_ATTEMPTS, when the notice is marked failed. Nothing here blocks a rollout.
- A sender claims a notice with a compare-and-swap (pending -> sending) so two jobs never send
  one notice; a claim older than ``CLAIM_SECONDS`` belonged to a dead job and is taken over
  (that job may have sent it: at-least-once across a crash, exactly-once otherwise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q
from django.template.loader import get_template
from django.utils import timezone

import audit
from notices.models import Notice

if TYPE_CHECKING:
    from rollouts.models import Rollout
    from sites.models import Site

logger = logging.getLogger(__name__)

NOTICE_ACTOR = "system:notices"
CLAIM_SECONDS = 300
BATCH = 200  # notices claimed per query
JOB_SECONDS = 60.0  # one send job's budget, well inside django-q2's timeout (Q_TIMEOUT)


@dataclass(frozen=True)
class Draft:
    """One notice to create: to whom, about which site (None: a staff notice), what it says."""

    site: Site | None
    recipients: Sequence[str]
    subject: str
    body: str


def render(kind: str, contexts: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(subject, body)`` for each context, from ``templates/email/<kind>{_subject,}.txt``."""
    subject_template = get_template(f"email/{kind}_subject.txt")
    body_template = get_template(f"email/{kind}.txt")
    return [
        (" ".join(subject_template.render(ctx).split())[:255], body_template.render(ctx))
        for ctx in contexts
    ]


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the ``attempts``-th failed send: base, 2x base, 4x base... at most 1 h."""
    base = _setting("NOTICE_RETRY_SECONDS", 60)
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 3600))


def notices_create(*, kind: str, rollout: Rollout, drafts: Iterable[Draft]) -> int:
    """Record notices of ``kind`` about ``rollout`` and send them after commit.

    Duplicates of notices already recorded are dropped by the unique constraints. Returns the
    number of drafts offered (not all may be new). Call inside the transaction of the change
    the notices are about.
    """
    now = timezone.now()
    rows = [
        Notice(
            kind=kind,
            rollout=rollout,
            site=draft.site,
            recipients=sorted(set(draft.recipients)),
            subject=draft.subject,
            body=draft.body,
            next_attempt_at=now,
        )
        for draft in drafts
        if draft.recipients
    ]
    if not rows:
        return 0
    Notice.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    rollout_id = rollout.pk

    def enqueue() -> None:
        from django_q.tasks import async_task

        async_task(
            "notices.tasks.send_notices", rollout_id, kind, task_name=f"notices-{rollout_id}"
        )

    transaction.on_commit(enqueue)
    return len(rows)


@dataclass
class SendReport:
    sent: int = 0
    retrying: int = 0
    gave_up: int = 0


def _due(now: datetime) -> Q:
    return Q(status=Notice.Status.PENDING, next_attempt_at__lte=now) | Q(
        status=Notice.Status.SENDING, claimed_until__lt=now
    )


def notices_send(
    *,
    rollout_id: int | None = None,
    kind: str | None = None,
    now: datetime | None = None,
    max_seconds: float = JOB_SECONDS,
) -> SendReport:
    """Send every notice that is due (optionally of one rollout and kind); never raises.

    Works in batches of ``BATCH`` over one SMTP connection for at most ``max_seconds`` (a job
    must end within django-q2's timeout); what is left is due for the next pass. A notice that
    fails is not due again until its backoff, so a pass cannot spin on a broken server.
    """
    now = now or timezone.now()
    started = time.monotonic()
    report = SendReport()
    due = Notice.objects.filter(_due(now))
    if rollout_id is not None:
        due = due.filter(rollout_id=rollout_id)
    if kind is not None:
        due = due.filter(kind=kind)
    connection = get_connection(fail_silently=False)
    try:
        while time.monotonic() - started < max_seconds:
            ids = list(due.order_by("id").values_list("id", flat=True)[:BATCH])
            for notice_id in ids:
                notice = _claim(notice_id, now)
                if notice is not None:
                    _send_one(notice, connection, now, report)
            if len(ids) < BATCH:
                break
    finally:
        try:
            connection.close()
        except Exception:  # a broken connection cannot be closed cleanly; it is gone anyway
            logger.debug("closing the mail connection failed", exc_info=True)
    return report


def _claim(notice_id: int, now: datetime) -> Notice | None:
    claimed = (
        Notice.objects.filter(_due(now), pk=notice_id).update(
            status=Notice.Status.SENDING, claimed_until=now + timedelta(seconds=CLAIM_SECONDS)
        )
        == 1
    )
    return Notice.objects.select_related("site", "rollout").get(pk=notice_id) if claimed else None


def _send_one(notice: Notice, connection: Any, now: datetime, report: SendReport) -> None:
    message = EmailMessage(
        subject=notice.subject,
        body=notice.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(notice.recipients),
        connection=connection,
    )
    error = ""
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # SMTP refusals, connection errors, timeouts: all retried
        error = f"{type(exc).__name__}: {exc}"[:2000]
        try:
            connection.close()  # the next send opens a fresh connection
        except Exception:
            logger.debug("closing the mail connection failed", exc_info=True)
    attempts = notice.attempts + 1
    data = {"kind": notice.kind, "recipients": notice.recipients, "attempt": attempts}
    with transaction.atomic():
        if not error:
            Notice.objects.filter(pk=notice.pk, status=Notice.Status.SENDING).update(
                status=Notice.Status.SENT, attempts=attempts, sent_at=now, last_error=""
            )
            audit.record(
                action="notice.sent", actor=NOTICE_ACTOR, site=notice.site,
                rollout=notice.rollout, data=data, message=notice.subject,
            )  # fmt: skip
            report.sent += 1
            return
        gave_up = attempts >= _setting("NOTICE_MAX_ATTEMPTS", 6)
        next_attempt_at = now + retry_delay(attempts)
        retry_at = None if gave_up else next_attempt_at.isoformat()
        Notice.objects.filter(pk=notice.pk, status=Notice.Status.SENDING).update(
            status=Notice.Status.FAILED if gave_up else Notice.Status.PENDING,
            attempts=attempts,
            last_error=error,
            next_attempt_at=next_attempt_at,
            claimed_until=None,
        )
        audit.record(
            action="notice.gave_up" if gave_up else "notice.send_failed", actor=NOTICE_ACTOR,
            site=notice.site, rollout=notice.rollout, ok=False, message=error,
            data={**data, "retry_at": retry_at},
        )  # fmt: skip
        if gave_up:
            report.gave_up += 1
        else:
            report.retrying += 1
    logger.warning("notice %s (%s) not sent: %s", notice.pk, notice.kind, error)
