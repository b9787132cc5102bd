"""Rollout admin: the Site actions' flow (form -> preview with dry run -> confirm), the progress
page, control buttons, permissions and CSRF. The confirmation pages of rollback, skip and cancel
have their own tests: tests/test_rollout_confirmations.py."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from rollouts import services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Site
from tests.fixtures.rollouts import site_row

V2 = "subscribie/subscribie:v2"
SITES_URL = "/admin/sites/site/"
UPGRADE_URL = "/admin/rollouts/rollout/upgrade/"
FORM = {"image": V2, "waves": "1,100%", "max_failures": "0", "wave_timeout": "600",
        "auto_revert": "on"}  # fmt: skip


def select(client, action: str, sites) -> object:
    return client.post(
        SITES_URL, {"action": action, "_selected_action": [site.pk for site in sites]}
    )


def test_upgrade_selected_flow_previews_dry_run_and_starts(admin_client, live_sites, cluster):
    sites = live_sites(3, canary=1)
    Site.objects.filter(slug="site-0002").update(hold_reason="launch week")
    response = select(admin_client, "upgrade_selected_sites", sites)
    assert response.status_code == 302 and response["Location"] == UPGRADE_URL
    assert b"Preview" in admin_client.get(UPGRADE_URL).content

    response = admin_client.post(UPGRADE_URL, {**FORM, "stage": "preview"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "site-0000" in page and "on hold: launch week" in page
    assert "would run subscribie/subscribie:v2" in page  # server-side dry run of wave 1
    assert cluster.read_site("site-0000").image != V2  # ...which changed nothing
    assert not Rollout.objects.exists()

    response = admin_client.post(UPGRADE_URL, {**FORM, "stage": "confirm"})
    rollout = Rollout.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:rollouts_rollout_change", args=[rollout.pk])
    assert rollout.status == Rollout.Status.RUNNING and rollout.targets.count() == 2
    assert rollout.created_by.username == "admin" and rollout.selection == "selected"
    assert AuditEvent.objects.filter(action="rollout.start", actor_label="admin").exists()


def test_whole_fleet_confirmation_requires_typing_the_image(admin_client, db):
    site_row("a", image="x/y:v1")
    select(admin_client, "upgrade_all_sites", Site.objects.all())
    admin_client.post(UPGRADE_URL, {**FORM, "stage": "confirm", "confirm_image": "nope"})
    assert not Rollout.objects.exists()
    admin_client.post(UPGRADE_URL, {**FORM, "stage": "confirm", "confirm_image": V2})
    assert Rollout.objects.get().selection == Rollout.Selection.ALL


@pytest.fixture
def staff(db):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_rollout"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return user, client


def make_rollout(n: int) -> Rollout:
    sites = [site_row(f"s{i}-{n}", image="x/y:v1") for i in range(n)]
    rollout = services.rollout_create(sites=sites, image=V2, actor="a")
    services.rollout_start(rollout=rollout, actor="a", enqueue=False)
    return rollout


def test_permissions_and_csrf(staff):
    user, client = staff
    rollout = make_rollout(2)
    assert client.get(UPGRADE_URL).status_code == 403
    pause = reverse("admin:rollouts_rollout_control", args=[rollout.pk, "pause"])
    assert client.post(pause).status_code == 403  # no CSRF token
    detail = client.get(reverse("admin:rollouts_rollout_change", args=[rollout.pk]))
    assert detail.status_code == 200 and b'http-equiv="refresh"' in detail.content
    assert b"Pause" not in detail.content  # no control permission, no button
    token = detail.cookies["csrftoken"].value
    assert client.post(pause, {"csrfmiddlewaretoken": token}).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="control_rollout"))
    response = client.post(pause, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.PAUSED
    assert client.get(pause).status_code == 405


def test_detail_and_list_use_a_constant_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    small, large = make_rollout(3), make_rollout(40)
    counts = []
    for rollout in (small, large):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(reverse("admin:rollouts_rollout_change", args=[rollout.pk]))
        assert response.status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
    page = admin_client.get(reverse("admin:rollouts_rollout_changelist"))
    assert page.status_code == 200 and b"rollout-progress" in page.content
    assert admin_client.get("/admin/rollouts/rollout/add/").status_code == 403


def test_whole_fleet_link_and_skip_button(admin_client, live_sites, cluster, django_user_model):
    sites = live_sites(3)
    page = admin_client.get(reverse("admin:sites_site_changelist"))
    link = reverse("admin:rollouts_rollout_upgrade_all")
    assert link.encode() in page.content
    form = admin_client.get(link, follow=True)
    assert form.status_code == 200 and b"Upgrade all sites" in form.content

    rollout = services.rollout_create(sites=sites, image="subscribie/subscribie:v9", actor="t")
    services.rollout_start(rollout=rollout, actor="t", enqueue=False)
    target = rollout.targets.get(site__slug="site-0002")
    skip = reverse("admin:rollouts_rollout_skip", args=[rollout.pk, target.pk])
    detail = admin_client.get(reverse("admin:rollouts_rollout_change", args=[rollout.pk]))
    assert skip.encode() in detail.content
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_rollout"))
    client = Client()
    client.force_login(viewer)
    assert client.get(skip).status_code == 403
    assert client.post(skip, {"post": "yes"}).status_code == 403
    # The button opens a confirmation page; neither it nor an unconfirmed POST skips.
    page = admin_client.get(skip)
    assert page.status_code == 200 and b"site-0002" in page.content
    assert admin_client.post(skip).status_code == 200
    target.refresh_from_db()
    assert target.status == RolloutTarget.Status.PENDING
    admin_client.post(skip, {"post": "yes"})
    target.refresh_from_db()
    assert target.status == RolloutTarget.Status.SKIPPED
    assert AuditEvent.objects.filter(action="target.skipped", site=target.site).exists()
