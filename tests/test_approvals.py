"""Approvals and schedules: who may let a big upgrade start, and the schedule that starts it.

Services, the admin (Django test client, CSRF enforced) and the commands. The clock is passed in
as ``now``; nothing sleeps. Sites are rows only: nothing here reaches a cluster.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from rollouts import approvals, services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Site
from tests.fixtures.rollouts import approver, site_row

V2 = "subscribie/subscribie:v2"
FORM = {"image": V2, "waves": "1,100%", "max_failures": "0", "wave_timeout": "600",
        "auto_revert": "on"}  # fmt: skip


@pytest.fixture
def fleet(db):
    return [site_row(f"s{i}") for i in range(3)]


def staff_user(username: str, *perms: str) -> User:
    user = User.objects.create_user(username, is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)


def whole_fleet(actor, **kwargs) -> Rollout:
    return services.rollout_create(
        sites=Site.objects.all(), image=V2, actor=actor, whole_fleet=True, **kwargs
    )


def actions(rollout: Rollout) -> list[tuple[str, str]]:
    events = AuditEvent.objects.filter(rollout=rollout).order_by("id")
    return list(events.values_list("action", "actor_label"))


# --- policy ----------------------------------------------------------------------------------


def test_policy_whole_fleet_or_over_threshold_and_never_rollbacks():
    needed = approvals.approval_needed
    assert needed(kind="upgrade", whole_fleet=True, targets=1, threshold=100)
    assert needed(kind="upgrade", whole_fleet=False, targets=101, threshold=100)
    assert not needed(kind="upgrade", whole_fleet=False, targets=100, threshold=100)
    assert not needed(kind="rollback", whole_fleet=True, targets=10_000, threshold=100)


def test_threshold_comes_from_settings(fleet, settings):
    settings.ROLLOUT_APPROVAL_THRESHOLD = 2
    big = services.rollout_create(sites=fleet, image=V2, actor="t")
    small = services.rollout_create(sites=fleet[:2], image="x/y:v3", actor="t")
    assert big.approval_required and not small.approval_required
    services.rollout_start(rollout=small, actor="t", enqueue=False)
    assert small.status == Rollout.Status.RUNNING


def test_approvals_turned_off_let_a_whole_fleet_upgrade_start_at_once(fleet, settings):
    settings.ROLLOUT_APPROVAL_REQUIRED = False  # a team of one: nobody else to approve
    rollout = whole_fleet("t")
    assert not rollout.approval_required and rollout.approval_expires_at is None
    services.rollout_start(rollout=rollout, actor="t", enqueue=False)
    assert rollout.status == Rollout.Status.RUNNING


# --- approve, self-approval, decline, expiry -----------------------------------------------


def test_unapproved_start_is_refused_and_self_approval_cannot_satisfy_it(fleet):
    alice = staff_user("alice", "start_rollout", "approve_rollout")
    rollout = whole_fleet(alice)
    assert rollout.approval_required and rollout.awaiting_approval
    assert rollout.approval_expires_at == pytest.approx(
        rollout.created_at + timedelta(hours=24), abs=timedelta(seconds=5)
    )
    with pytest.raises(services.RolloutError, match="needs approval before it starts"):
        services.rollout_start(rollout=rollout, actor=alice, enqueue=False)
    with pytest.raises(approvals.ApprovalError, match="a second staff member must approve"):
        approvals.rollout_approve(rollout=rollout, actor=alice, enqueue=False)
    with pytest.raises(approvals.ApprovalError, match="only be approved by a staff member"):
        approvals.rollout_approve(rollout=rollout, actor="system:cli", enqueue=False)
    nobody = staff_user("nobody", "start_rollout")
    with pytest.raises(approvals.ApprovalError, match="may not approve"):
        approvals.rollout_approve(rollout=rollout, actor=nobody, enqueue=False)
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.DRAFT and rollout.approved_at is None
    # Nothing that was refused was recorded as done.
    assert [a for a, _ in actions(rollout)] == ["rollout.create"]


def test_another_permitted_user_approves_and_it_starts(fleet):
    rollout = whole_fleet(staff_user("alice", "start_rollout"))
    bob = approver("bob")
    approvals.rollout_approve(rollout=rollout, actor=bob, enqueue=False)
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING
    assert rollout.approved_by == bob and rollout.approved_at is not None
    assert actions(rollout) == [
        ("rollout.create", "alice"), ("rollout.approve", "bob"), ("rollout.start", "bob"),
    ]  # fmt: skip
    with pytest.raises(approvals.ApprovalError, match="not awaiting approval"):
        approvals.rollout_approve(rollout=rollout, actor=approver("carol"), enqueue=False)


def test_decline_skips_every_target_and_cannot_then_be_approved(fleet):
    rollout = whole_fleet("system:cli")
    approvals.rollout_decline(rollout=rollout, actor=approver("bob"), reason="not in December")
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.DECLINED
    assert rollout.status_message == "declined by bob: not in December"
    assert set(rollout.targets.values_list("status", flat=True)) == {"skipped"}
    with pytest.raises(approvals.ApprovalError, match="not awaiting approval"):
        approvals.rollout_approve(rollout=rollout, actor=approver("carol"), enqueue=False)
    with pytest.raises(services.RolloutError):
        services.rollout_start(rollout=rollout, actor="x", enqueue=False)
    assert ("rollout.decline", "bob") in actions(rollout)


def test_unapproved_rollout_expires_after_the_approval_hours(fleet, settings):
    settings.ROLLOUT_APPROVAL_HOURS = 2
    rollout = whole_fleet("system:cli")
    expires = rollout.approval_expires_at
    assert expires == pytest.approx(rollout.created_at + timedelta(hours=2), abs=timedelta(5))
    assert approvals.rollouts_expire_unapproved(now=expires - timedelta(minutes=1)) == []
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.DRAFT
    assert approvals.rollouts_expire_unapproved(now=expires) == [rollout.pk]
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.EXPIRED and "approval expired" in rollout.status_message
    assert set(rollout.targets.values_list("status", flat=True)) == {"skipped"}
    assert ("rollout.expire", "system:schedule") in actions(rollout)
    with pytest.raises(approvals.ApprovalError, match="not awaiting approval"):
        approvals.rollout_approve(rollout=rollout, actor=approver(), enqueue=False)


def test_approving_past_the_expiry_is_refused_even_before_the_schedule_ran(fleet):
    rollout = whole_fleet("system:cli")
    later = rollout.approval_expires_at + timedelta(seconds=1)
    with pytest.raises(approvals.ApprovalError, match="approval expired"):
        approvals.rollout_approve(rollout=rollout, actor=approver(), now=later, enqueue=False)
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.EXPIRED


# --- schedules -------------------------------------------------------------------------------


def test_scheduled_start_not_before_its_time_and_started_after(fleet):
    start_at = timezone.now() + timedelta(hours=3)
    rollout = services.rollout_create(sites=fleet[:2], image=V2, actor="t", start_at=start_at)
    assert not rollout.approval_required and rollout.phase == "scheduled"
    assert approvals.rollouts_start_due(now=start_at - timedelta(seconds=1), enqueue=False) == []
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.DRAFT
    assert approvals.rollouts_start_due(now=start_at, enqueue=False) == [rollout.pk]
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING
    assert ("rollout.start", "system:schedule") in actions(rollout)


def test_scheduled_rollout_needing_approval_starts_only_once_approved(fleet):
    start_at = timezone.now() + timedelta(hours=3)
    rollout = whole_fleet(staff_user("alice"), start_at=start_at)
    assert approvals.rollouts_start_due(now=start_at + timedelta(minutes=5), enqueue=False) == []
    approvals.rollout_approve(rollout=rollout, actor=approver(), enqueue=False)
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.DRAFT  # approved, waiting for its time
    assert rollout.phase == "scheduled"
    assert approvals.rollouts_start_due(now=start_at - timedelta(minutes=1), enqueue=False) == []
    assert approvals.rollouts_start_due(now=start_at, enqueue=False) == [rollout.pk]
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING


def test_start_at_must_be_in_the_future_and_zoned(fleet):
    with pytest.raises(services.PlanError, match="not in the future"):
        services.rollout_create(
            sites=fleet, image=V2, actor="t", start_at=timezone.now() - timedelta(minutes=1)
        )
    with pytest.raises(services.PlanError, match="time zone"):
        services.rollout_create(
            sites=fleet, image=V2, actor="t", start_at=timezone.now().replace(tzinfo=None)
        )
    assert not Rollout.objects.exists()


# --- admin -----------------------------------------------------------------------------------


def client_for(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf_post(client: Client, url: str, data: dict | None = None):
    page = client.get(url)
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else None
    token = token or client.cookies["csrftoken"].value
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": token})


def approval_url(rollout: Rollout, decision: str) -> str:
    return reverse("admin:rollouts_rollout_approval", args=[rollout.pk, decision])


def detail_url(rollout: Rollout) -> str:
    return reverse("admin:rollouts_rollout_change", args=[rollout.pk])


def test_admin_whole_fleet_upgrade_awaits_approval_and_creator_cannot_approve(admin_client, fleet):
    admin_client.post(
        "/admin/sites/site/",
        {"action": "upgrade_all_sites", "_selected_action": [fleet[0].pk]},
    )
    preview = admin_client.post("/admin/rollouts/rollout/upgrade/", {**FORM, "stage": "preview"})
    assert "This upgrade needs approval" in preview.content.decode()
    response = admin_client.post(
        "/admin/rollouts/rollout/upgrade/", {**FORM, "stage": "confirm", "confirm_image": V2},
        follow=True,
    )  # fmt: skip
    rollout = Rollout.objects.get()
    assert rollout.status == Rollout.Status.DRAFT and rollout.awaiting_approval
    page = response.content.decode()
    assert "awaits approval by a second staff member" in page
    assert "Awaiting approval" in page and "awaiting approval" in page  # summary and badge
    assert "You created this rollout" in page and approval_url(rollout, "approve") not in page

    # The creator (a superuser, so permitted) posting the approval anyway is refused.
    response = admin_client.post(approval_url(rollout, "approve"), {"post": "yes"}, follow=True)
    assert "a second staff member must approve it" in response.content.decode()
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.DRAFT and rollout.approved_at is None
    dashboard = admin_client.get("/admin/").content.decode()
    assert "Awaiting approval or scheduled" in dashboard and f"#{rollout.pk} upgrade" in dashboard


def test_admin_approval_page_get_changes_nothing_and_needs_permission_and_csrf(fleet):
    rollout = whole_fleet(staff_user("alice", "view_rollout"))
    viewer = client_for(staff_user("viewer", "view_rollout"))
    assert viewer.get(approval_url(rollout, "approve")).status_code == 403
    assert "Approve&hellip;" not in viewer.get(detail_url(rollout)).content.decode()

    bob = staff_user("bob", "view_rollout", "approve_rollout")
    client = client_for(bob)
    detail = client.get(detail_url(rollout)).content.decode()
    assert approval_url(rollout, "approve") in detail and approval_url(rollout, "decline") in detail
    page = client.get(approval_url(rollout, "approve"))
    assert page.status_code == 200 and "Yes, approve rollout" in page.content.decode()
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.DRAFT  # the GET changed nothing
    assert client.post(approval_url(rollout, "approve"), {"post": "yes"}).status_code == 403
    rollout.refresh_from_db()
    assert rollout.approved_at is None  # no CSRF token, nothing approved

    response = csrf_post(client, approval_url(rollout, "approve"), {"post": "yes"})
    assert response.status_code == 302 and response["Location"] == detail_url(rollout)
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING and rollout.approved_by == bob
    assert ("rollout.approve", "bob") in actions(rollout)


def test_admin_decline_with_a_reason(fleet):
    rollout = whole_fleet("system:cli")
    client = client_for(staff_user("bob", "view_rollout", "approve_rollout"))
    page = client.get(approval_url(rollout, "decline")).content.decode()
    assert 'name="reason"' in page
    csrf_post(client, approval_url(rollout, "decline"), {"post": "yes", "reason": "freeze"})
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.DECLINED
    assert rollout.status_message == "declined by bob: freeze"
    assert AuditEvent.objects.get(action="rollout.decline").actor_label == "bob"


def test_admin_upgrade_form_schedules_a_start(admin_client, fleet):
    admin_client.post(
        "/admin/sites/site/",
        {"action": "upgrade_selected_sites", "_selected_action": [fleet[0].pk]},
    )
    start_at = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    form = {**FORM, "start_at": start_at.strftime("%Y-%m-%d %H:%M")}
    past = admin_client.post(
        "/admin/rollouts/rollout/upgrade/", {**form, "stage": "preview", "start_at": "2020-01-01"}
    )
    assert "The start time must be in the future" in past.content.decode()
    preview = admin_client.post("/admin/rollouts/rollout/upgrade/", {**form, "stage": "preview"})
    assert "It is scheduled to start at" in preview.content.decode()
    assert f'value="{form["start_at"]}"' in preview.content.decode()  # carried to the confirm
    admin_client.post("/admin/rollouts/rollout/upgrade/", {**form, "stage": "confirm"})
    rollout = Rollout.objects.get()
    assert rollout.status == Rollout.Status.DRAFT and rollout.start_at == start_at
    assert not rollout.approval_required
    assert "Scheduled to start at" in admin_client.get(detail_url(rollout)).content.decode()
    assert RolloutTarget.objects.get(rollout=rollout).status == "pending"


# --- commands --------------------------------------------------------------------------------


def call(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_commands_approve_decline_and_start_at(fleet):
    staff_user("alice", "start_rollout", "approve_rollout")
    approver("bob")
    out = call("fleet_upgrade", "--image", V2, "--all", "--as", "alice")
    rollout = Rollout.objects.get()
    assert f"rollout {rollout.pk} awaits approval by a second staff member" in out
    assert rollout.status == Rollout.Status.DRAFT
    out = StringIO()
    with pytest.raises(CommandError, match="is awaiting approval"):
        call_command("rollout_status", str(rollout.pk), stdout=out)
    assert "awaiting approval until" in out.getvalue()
    with pytest.raises(CommandError, match="only be approved by a staff member"):
        call("rollout_control", str(rollout.pk), "approve")
    with pytest.raises(CommandError, match="a second staff member must approve"):
        call("rollout_control", str(rollout.pk), "approve", "--as", "alice")
    assert "running" in call("rollout_control", str(rollout.pk), "approve", "--as", "bob")
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING and rollout.approved_by.username == "bob"
    services.rollout_cancel(rollout=rollout, actor="t")

    with pytest.raises(CommandError, match=r"awaits approval.*not followed"):
        call("fleet_upgrade", "--image", "x/y:v3", "--all", "--wait")
    second = Rollout.objects.get(image="x/y:v3")
    assert "declined" in call(
        "rollout_control", str(second.pk), "decline", "--as", "bob", "--reason", "no"
    )
    second.refresh_from_db()
    assert second.status == Rollout.Status.DECLINED

    with pytest.raises(CommandError, match="is not an ISO 8601 time"):
        call("fleet_upgrade", "--image", "x/y:v4", "--sites", "s0", "--start-at", "tomorrow")
    with pytest.raises(CommandError, match="needs a time zone"):
        call(
            "fleet_upgrade", "--image", "x/y:v4", "--sites", "s0", "--start-at", "2030-01-01T02:00"
        )
    when = (timezone.now() + timedelta(hours=5)).replace(microsecond=0)
    out = call(
        "fleet_upgrade", "--image", "x/y:v4", "--sites", "s0", "--start-at", when.isoformat()
    )
    scheduled = Rollout.objects.get(image="x/y:v4")
    assert "is scheduled to start at" in out and scheduled.start_at == when
    assert scheduled.status == Rollout.Status.DRAFT
    out = StringIO()
    with pytest.raises(CommandError, match="is scheduled"):
        call_command("rollout_status", str(scheduled.pk), stdout=out)
    assert "scheduled to start at" in out.getvalue()
