"""Email notices through a real SMTP server on loopback (aiosmtpd, tests/fixtures/smtp.py).

Notices are recorded in the transaction of the change, sent by a django-q2 job after commit
(django-q2 runs it in-process here: ``Conf.SYNC``), once per site per rollout per kind, and a
send that fails is retried by the schedule later without holding anything up.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule

from audit.models import AuditEvent
from notices import services as notice_services
from notices.models import Notice
from rollouts import approvals, engine, notices, services
from rollouts.models import Rollout
from sites.models import Site
from tests.fixtures.rollouts import approver, site_row

V2 = "subscribie/subscribie:v2"
BROKEN = "subscribie/subscribie:broken"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def q_sync(monkeypatch):
    """django-q2 runs enqueued jobs at once, in this process (its own sync mode)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


def staff(username: str, *perms: str, superuser: bool = False) -> User:
    user = User.objects.create_user(
        username, email=f"{username}@staff.test", is_staff=True, is_superuser=superuser
    )
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)


def test_staff_who_can_approve_are_emailed_after_commit(
    db, smtp_server, q_sync, settings, django_capture_on_commit_callbacks
):
    settings.NOTICE_STAFF_EMAILS = ["ops@team.test"]
    settings.ADMIN_BASE_URL = "https://fleet.test"
    site_row("a")
    alice = staff("alice", "approve_rollout")  # the creator: not asked to approve her own
    staff("bob", "approve_rollout")
    staff("carol", "view_rollout")  # cannot approve: not told
    staff("dave", superuser=True)
    with django_capture_on_commit_callbacks(execute=True):
        rollout = services.rollout_create(
            sites=Site.objects.all(), image=V2, actor=alice, whole_fleet=True
        )
        assert smtp_server.messages == []  # nothing leaves before the commit
    (message,) = smtp_server.messages
    assert sorted(message.rcpt_tos) == ["bob@staff.test", "dave@staff.test", "ops@team.test"]
    assert message.mail_from == "fleet@example.com"
    assert message.subject == f"Rollout #{rollout.pk} needs approval: upgrade of 1 sites to {V2}"
    assert f"https://fleet.test/admin/rollouts/rollout/{rollout.pk}/change/" in message.body
    assert f"rollout_control {rollout.pk} approve" in message.body
    assert "(the whole fleet)" in message.body
    notice = Notice.objects.get()
    assert notice.status == Notice.Status.SENT and notice.attempts == 1
    sent = AuditEvent.objects.get(action="notice.sent")
    assert sent.rollout_id == rollout.pk and sent.data["kind"] == "approval_needed"


def test_owners_told_when_and_to_what_once_a_scheduled_upgrade_is_approved(
    db, smtp_server, q_sync, django_capture_on_commit_callbacks
):
    sites = [site_row(f"shop{i}") for i in range(3)]
    site_row("other", status=Site.Status.SUSPENDED)  # left out: not told
    start_at = (timezone.now() + timedelta(days=2)).replace(
        hour=2, minute=30, second=0, microsecond=0
    )
    with django_capture_on_commit_callbacks(execute=True):
        rollout = services.rollout_create(
            sites=Site.objects.all(), image=V2, actor="system:cli", whole_fleet=True,
            start_at=start_at,
        )  # fmt: skip
    assert smtp_server.to("shop0@example.com") == []  # not approved yet: owners not told
    with django_capture_on_commit_callbacks(execute=True):
        approvals.rollout_approve(rollout=rollout, actor=approver(), enqueue=False)
    for site in sites:
        (message,) = smtp_server.to(site.owner_email)
        assert message.rcpt_tos == [site.owner_email]  # each owner gets only their own
        assert message.subject == (
            f"Your site {site.title} will be upgraded on {start_at:%a} {start_at.day} "
            f"{start_at:%b %Y} 02:30 UTC"
        )
        assert V2 in message.body and f"{start_at.day} {start_at:%B %Y}, 02:30 UTC" in message.body
        assert site.slug in message.body
    assert smtp_server.to("other@example.com") == []
    owner_messages = len(smtp_server.messages)

    # The same notice again (a hook that runs twice) sends nothing twice...
    with django_capture_on_commit_callbacks(execute=True):
        notices.upgrade_scheduled(rollout=rollout)
    assert len(smtp_server.messages) == owner_messages
    assert Notice.objects.filter(kind=Notice.Kind.UPGRADE_SCHEDULED).count() == 3
    # ...because the database refuses a second notice per site, rollout and kind.
    first = Notice.objects.filter(kind=Notice.Kind.UPGRADE_SCHEDULED).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Notice.objects.create(
            kind=first.kind, rollout=rollout, site=first.site, recipients=["x@y.test"],
            subject="s", body="b", next_attempt_at=timezone.now(),
        )  # fmt: skip
    with pytest.raises(IntegrityError), transaction.atomic():
        Notice.objects.create(
            kind=Notice.Kind.APPROVAL_NEEDED, rollout=rollout, recipients=["x@y.test"],
            subject="s", body="b", next_attempt_at=timezone.now(),
        )  # fmt: skip
        Notice.objects.create(
            kind=Notice.Kind.APPROVAL_NEEDED, rollout=rollout, recipients=["x@y.test"],
            subject="s", body="b", next_attempt_at=timezone.now(),
        )  # fmt: skip


def halting_upgrade(settings, live_sites, kubesim, capture) -> Rollout:
    """Two live sites; an image that never becomes ready: wave 1 fails, halt, auto-revert."""
    settings.SITE_PROGRESS_DEADLINE_SECONDS = 1
    sites = live_sites(2)
    kubesim.set_fail_images(r":broken$")
    staff("ops", "control_rollout")
    rollout = services.rollout_create(sites=sites, image=BROKEN, actor="t", waves="1,100%")
    services.rollout_start(rollout=rollout, actor="t", enqueue=False)
    with capture(execute=True):
        rollout = engine.run_until_settled(rollout.pk, poll=0.05).rollout
    assert rollout.status == Rollout.Status.REVERTED, rollout.status_message
    return rollout


def test_halt_tells_staff_and_the_failed_sites_owner_after_its_revert(
    settings, live_sites, cluster, kubesim, smtp_server, q_sync,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    rollout = halting_upgrade(settings, live_sites, kubesim, django_capture_on_commit_callbacks)
    (halted,) = smtp_server.to("ops@staff.test")
    assert halted.subject == f"Rollout #{rollout.pk} halted: upgrade to {BROKEN}"
    assert "failure budget exceeded" in halted.body and "being put back" in halted.body
    (reverted,) = smtp_server.to("owner0@example.com")  # site-0000 was wave 1: it failed
    assert reverted.subject == "Your site Site 0 was put back on its previous version"
    assert BROKEN in reverted.body and "subscribie/subscribie:v1" in reverted.body
    assert smtp_server.to("owner1@example.com") == []  # never patched: nothing to tell
    assert len(smtp_server.messages) == 2
    assert AuditEvent.objects.filter(action="notice.sent", rollout=rollout).count() == 2


def test_smtp_refusing_or_down_does_not_hold_the_rollout_and_is_retried_later(
    settings, live_sites, cluster, kubesim, smtp_server, q_sync,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    settings.NOTICE_RETRY_SECONDS = 60
    smtp_server.refuse = "451 4.7.1 Try again later"
    before = timezone.now()
    rollout = halting_upgrade(settings, live_sites, kubesim, django_capture_on_commit_callbacks)
    assert rollout.status == Rollout.Status.REVERTED  # the rollout went on regardless
    assert smtp_server.messages == []
    owed = Notice.objects.filter(rollout=rollout).order_by("kind")
    assert [(n.kind, n.status, n.attempts) for n in owed] == [
        ("rollout_halted", "pending", 1), ("site_reverted", "pending", 1),
    ]  # fmt: skip
    assert all("451" in n.last_error for n in owed)
    failed = AuditEvent.objects.filter(action="notice.send_failed", rollout=rollout)
    assert failed.count() == 2 and failed.first().result != "ok"
    first_try = max(n.next_attempt_at for n in owed) - timedelta(seconds=60)
    assert first_try >= before

    # Not yet due: nothing is tried. Then the server is down: tried, failed, backed off 120 s.
    smtp_server.refuse = None
    assert notice_services.notices_send(now=first_try + timedelta(seconds=30)).retrying == 0
    smtp_server.stop()
    report = notice_services.notices_send(now=first_try + timedelta(seconds=61))
    assert report.retrying == 2 and report.sent == 0
    assert {n.attempts for n in owed.all()} == {2}
    assert all("Connection refused" in n.last_error or "Errno" in n.last_error for n in owed.all())

    # Back up: the next due pass (the every-minute schedule) sends each exactly once.
    smtp_server.start()
    assert notice_services.notices_send(now=first_try + timedelta(seconds=61 + 100)).sent == 0
    report = notice_services.notices_send(now=first_try + timedelta(seconds=61 + 121))
    assert report.sent == 2
    assert notice_services.notices_send(now=first_try + timedelta(hours=5)).sent == 0
    assert len(smtp_server.messages) == 2 and len(smtp_server.to("ops@staff.test")) == 1
    assert {n.status for n in owed.all()} == {"sent"}
    assert Schedule.objects.filter(func="notices.tasks.send_due_notices", minutes=1).exists()


def test_a_send_that_keeps_failing_gives_up_after_the_max_attempts(db, smtp_server, settings):
    settings.NOTICE_MAX_ATTEMPTS = 2
    smtp_server.refuse = "550 5.1.1 No such mailbox"
    site_row("a")
    staff("bob", "approve_rollout")
    with transaction.atomic():
        rollout = services.rollout_create(
            sites=Site.objects.all(), image=V2, actor="t", whole_fleet=True
        )
    now = timezone.now()
    assert notice_services.notices_send(now=now).retrying == 1
    assert notice_services.notices_send(now=now + timedelta(hours=2)).gave_up == 1
    notice = Notice.objects.get(rollout=rollout)
    assert notice.status == Notice.Status.FAILED and "550" in notice.last_error
    assert AuditEvent.objects.filter(action="notice.gave_up", result="error").count() == 1
    assert notice_services.notices_send(now=now + timedelta(days=2)).retrying == 0
    rollout.refresh_from_db()
    assert rollout.awaiting_approval  # the notice failing changed nothing about the rollout


def test_email_url_parsing():
    from django.core.exceptions import ImproperlyConfigured

    from subscribie_admin.config import email_from_url

    smtp = email_from_url("smtp+tls://fleet:s3cret@mail.example.com:587")
    assert smtp["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (smtp["EMAIL_HOST"], smtp["EMAIL_PORT"], smtp["EMAIL_USE_TLS"]) == (
        "mail.example.com", 587, True,
    )  # fmt: skip
    assert smtp["EMAIL_HOST_USER"] == "fleet" and smtp["EMAIL_HOST_PASSWORD"] == "s3cret"
    console = email_from_url("consolemail://")
    assert console == {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    with pytest.raises(ImproperlyConfigured, match="EMAIL_URL has an unsupported"):
        email_from_url("mail.example.com:25")
    with pytest.raises(ImproperlyConfigured, match="for TLS use smtp\\+tls://"):
        email_from_url("smtp://mail.example.com:587/?tls=True")


def test_production_without_email_url_warns_that_notices_are_only_printed():
    from tests.test_settings import _manage

    env = {"DEBUG": "0", "SECRET_KEY": "k" * 60, "ALLOWED_HOSTS": "fleet.example.com"}
    result = _manage("check", "--fail-level", "WARNING", **env)
    assert result.returncode != 0 and "subscribie_admin.W001" in result.stderr
    assert "notices are printed, not sent" in result.stderr
    assert (
        _manage("check", "--fail-level", "WARNING", EMAIL_URL="smtp://m.test:25", **env).returncode
        == 0
    )
