"""Nothing that changes the fleet happens on one click (rollout admin).

Roll back (of a rollout, of selected sites) shows a preview first: each wave with its sites and
the exact image each goes back to, the left-out sites and why, the server-side dry run of the
first wave, and a typed confirmation when it covers the whole fleet. Skip, Cancel and
Cancel-and-revert show a confirmation page naming the sites and what happens to them. For each,
a GET (and an unconfirmed POST) shows the page and changes nothing; only the confirmed POST acts.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from rollouts import engine, services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Site
from tests.fixtures.rollouts import site_row
from tests.fixtures.sites import wait_until

V1 = "subscribie/subscribie:v1"
V2 = "subscribie/subscribie:v2"
HOTFIX = "subscribie/subscribie:hotfix"
SITES_URL = "/admin/sites/site/"
ROLLBACK_SITES_URL = "/admin/rollouts/rollout/rollback-sites/"
STRATEGY = {"waves": "50%,100%", "max_failures": "0", "wave_timeout": "600", "auto_revert": "on"}

pytestmark = pytest.mark.timeout(120)


def detail_url(rollout: Rollout) -> str:
    return reverse("admin:rollouts_rollout_change", args=[rollout.pk])


def rollback_url(rollout: Rollout) -> str:
    return reverse("admin:rollouts_rollout_rollback", args=[rollout.pk])


def control_url(rollout: Rollout, action: str) -> str:
    return reverse("admin:rollouts_rollout_control", args=[rollout.pk, action])


def run(rollout: Rollout, cluster) -> Rollout:
    return engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.05).rollout


def upgraded(sites, cluster, *, waves: str = "100%") -> Rollout:
    """A succeeded upgrade of ``sites`` to V2, run by the engine on kubesim."""
    rollout = services.rollout_create(sites=sites, image=V2, waves=waves, actor="t")
    services.rollout_start(rollout=rollout, actor="t", enqueue=False)
    rollout = run(rollout, cluster)
    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message
    return rollout


def images(cluster) -> dict[str, str]:
    return {slug: snap.image for slug, snap in cluster.list_sites().items()}


def nothing_changed(cluster, before: dict[str, str], audit_rows: int) -> bool:
    return (
        images(cluster) == before
        and not Rollout.objects.filter(kind=Rollout.Kind.ROLLBACK).exists()
        and AuditEvent.objects.count() == audit_rows
    )


def started(rollout_sites, *, image: str = V2) -> Rollout:
    rollout = services.rollout_create(sites=rollout_sites, image=image, actor="t")
    return services.rollout_start(rollout=rollout, actor="t", enqueue=False)


# --- roll back a rollout ------------------------------------------------------------------------


def test_rollback_of_a_rollout_previews_images_left_out_and_dry_run_then_confirms(
    admin_client, live_sites, cluster
):
    sites = live_sites(4)
    cluster.set_image("site-0001", HOTFIX, change_cause="by hand")
    wait_until(lambda: cluster.read_site("site-0001").state.done, timeout=10)
    upgrade = upgraded(sites[:3], cluster)  # site-0003 stays out: not the whole fleet
    Site.objects.filter(slug="site-0002").update(hold_reason="launch week")

    detail = admin_client.get(detail_url(upgrade)).content.decode()
    assert f'href="{rollback_url(upgrade)}"' in detail  # a link to the preview, not a POST
    assert control_url(upgrade, "rollback") not in detail
    before, audit_rows = images(cluster), AuditEvent.objects.count()

    response = admin_client.get(rollback_url(upgrade))
    page = response.content.decode()
    assert response.status_code == 200
    assert f"site-0000 &rarr; <code>{V1}</code>" in page  # the exact image each goes back to
    assert f"site-0001 &rarr; <code>{HOTFIX}</code>" in page
    assert "site-0002" in page and "on hold: launch week" in page  # left out, and why
    assert f"would run {V1}" in page and f"would run {HOTFIX}" in page  # first wave dry run
    assert 'name="confirm_sites"' not in page  # not the whole fleet: no typing
    assert "Start rollback" in page
    assert nothing_changed(cluster, before, audit_rows)  # the dry run changed nothing

    # A POST that is not the preview's confirmation only shows the preview again.
    assert admin_client.post(rollback_url(upgrade), {}).status_code == 200
    assert nothing_changed(cluster, before, audit_rows)

    response = admin_client.post(rollback_url(upgrade), {"stage": "confirm"})
    rollback = Rollout.objects.get(kind=Rollout.Kind.ROLLBACK)
    assert response.status_code == 302 and response["Location"] == detail_url(rollback)
    assert rollback.parent_id == upgrade.pk and rollback.status == Rollout.Status.RUNNING
    assert {t.site.slug: t.to_image for t in rollback.targets.select_related("site")} == {
        "site-0000": V1,
        "site-0001": HOTFIX,
    }
    assert AuditEvent.objects.filter(
        action="rollout.create", rollout=rollback, actor_label="admin"
    ).exists()

    rollback = run(rollback, cluster)
    assert rollback.status == Rollout.Status.SUCCEEDED
    assert images(cluster) == {**before, "site-0000": V1, "site-0001": HOTFIX}
    assert rollback.status_message == "2 of 2 sites back on the previous image; 0 failed"
    detail = admin_client.get(detail_url(rollback)).content.decode()
    assert "back on the previous image" in detail and "on the new image" not in detail
    assert "each site back to its previous image" in detail


def test_whole_fleet_rollback_of_a_rollout_asks_for_the_number_of_sites(admin_client, db):
    sites = [site_row(f"s{i}", image=V2) for i in range(3)]
    upgrade = services.rollout_create(sites=sites, image="x/y:v3", actor="t", whole_fleet=True)
    upgrade.targets.update(status=RolloutTarget.Status.SUCCEEDED, from_image=V1, generation=2)
    Rollout.objects.filter(pk=upgrade.pk).update(status=Rollout.Status.SUCCEEDED)

    page = admin_client.get(rollback_url(upgrade)).content.decode()
    assert 'name="confirm_sites"' in page and "This rolls back the whole fleet" in page
    assert "dry run" in page  # no cluster here: the page says so instead of failing
    for typed in ("", "2", "all"):
        response = admin_client.post(
            rollback_url(upgrade), {"stage": "confirm", "confirm_sites": typed}
        )
        assert response.status_code == 200  # the preview again, with the error
        assert not Rollout.objects.filter(kind=Rollout.Kind.ROLLBACK).exists()
    assert b"Type the number of sites exactly" in response.content

    response = admin_client.post(rollback_url(upgrade), {"stage": "confirm", "confirm_sites": "3"})
    rollback = Rollout.objects.get(kind=Rollout.Kind.ROLLBACK)
    assert response.status_code == 302 and rollback.selection == Rollout.Selection.ALL
    assert set(rollback.targets.values_list("to_image", flat=True)) == {V1}


def test_rollback_of_an_active_rollout_is_refused_and_needs_the_permission(admin_client, db):
    rollout = started([site_row("a"), site_row("b")])
    response = admin_client.get(rollback_url(rollout), follow=True)
    assert response.redirect_chain[-1][0] == detail_url(rollout)
    assert b"pause and cancel it before rolling back" in response.content
    admin_client.post(rollback_url(rollout), {"stage": "confirm"})
    assert not Rollout.objects.filter(kind=Rollout.Kind.ROLLBACK).exists()

    Rollout.objects.filter(pk=rollout.pk).update(status=Rollout.Status.SUCCEEDED)
    assert admin_client.post(control_url(rollout, "rollback")).status_code == 404  # old button


def test_rollback_preview_permission_and_csrf(db, django_user_model):
    rollout = started([site_row("a")])
    Rollout.objects.filter(pk=rollout.pk).update(status=Rollout.Status.SUCCEEDED)
    user = django_user_model.objects.create_user("ops", password="pw-ops-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_rollout"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    detail = client.get(detail_url(rollout))
    assert b"Roll back this rollout" not in detail.content
    assert client.get(rollback_url(rollout)).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="rollback_rollout"))
    user = django_user_model.objects.get(pk=user.pk)  # fresh permission cache
    client.force_login(user)
    assert client.get(rollback_url(rollout)).status_code == 200
    assert client.post(rollback_url(rollout), {"stage": "confirm"}).status_code == 403  # CSRF
    assert not Rollout.objects.filter(kind=Rollout.Kind.ROLLBACK).exists()


# --- roll back selected sites --------------------------------------------------------------------


def test_rollback_of_selected_sites_previews_images_and_dry_run(admin_client, live_sites, cluster):
    sites = live_sites(3)
    upgraded(sites, cluster)
    before, audit_rows = images(cluster), AuditEvent.objects.count()
    response = admin_client.post(
        SITES_URL,
        {"action": "rollback_selected_sites", "_selected_action": [s.pk for s in sites[:2]]},
    )
    assert response.status_code == 302 and response["Location"] == ROLLBACK_SITES_URL
    assert b"2 selected sites" in admin_client.get(ROLLBACK_SITES_URL).content

    page = admin_client.post(ROLLBACK_SITES_URL, {**STRATEGY, "stage": "preview"}).content.decode()
    assert f"site-0000 &rarr; <code>{V1}</code>" in page
    assert f"site-0001 &rarr; <code>{V1}</code>" in page and "site-0002" not in page
    assert "Server-side dry run of the first wave" in page and f"would run {V1}" in page
    assert 'name="confirm_sites"' not in page
    assert nothing_changed(cluster, before, audit_rows)

    response = admin_client.post(ROLLBACK_SITES_URL, {**STRATEGY, "stage": "confirm"})
    rollback = Rollout.objects.get(kind=Rollout.Kind.ROLLBACK)
    assert response.status_code == 302 and response["Location"] == detail_url(rollback)
    assert rollback.targets.count() == 2 and rollback.waves == "50%,100%"


def test_rollback_of_every_site_asks_for_the_number_of_sites(admin_client, db):
    sites = [site_row(f"s{i}", image=V2) for i in range(2)]
    upgrade = services.rollout_create(sites=sites, image="x/y:v3", actor="t")
    upgrade.targets.update(status=RolloutTarget.Status.SUCCEEDED, from_image=V1, generation=2)
    Rollout.objects.filter(pk=upgrade.pk).update(status=Rollout.Status.SUCCEEDED)
    site_row("gone", status=Site.Status.DELETED)  # not part of the fleet any more
    admin_client.post(
        SITES_URL,
        {"action": "rollback_selected_sites", "_selected_action": [s.pk for s in sites]},
    )
    page = admin_client.post(ROLLBACK_SITES_URL, {**STRATEGY, "stage": "preview"})
    assert b'name="confirm_sites"' in page.content
    admin_client.post(ROLLBACK_SITES_URL, {**STRATEGY, "stage": "confirm", "confirm_sites": "1"})
    assert not Rollout.objects.filter(kind=Rollout.Kind.ROLLBACK).exists()
    admin_client.post(ROLLBACK_SITES_URL, {**STRATEGY, "stage": "confirm", "confirm_sites": "2"})
    assert Rollout.objects.get(kind=Rollout.Kind.ROLLBACK).targets.count() == 2


# --- skip, cancel, cancel and revert -------------------------------------------------------------


def test_skip_names_the_site_and_acts_only_when_confirmed(admin_client, db):
    rollout = started([site_row("a", image="x/y:v1"), site_row("b", image="x/y:v1")])
    pending, waiting = rollout.targets.order_by("position")
    RolloutTarget.objects.filter(pk=waiting.pk).update(
        status=RolloutTarget.Status.WAITING, from_image="x/y:v1", generation=2
    )
    skip = reverse("admin:rollouts_rollout_skip", args=[rollout.pk, pending.pk])

    page = admin_client.get(skip).content.decode()
    assert "Skip a in rollout" in page and "stays on x/y:v1" in page and "Yes, skip a" in page
    assert admin_client.post(skip).status_code == 200  # not the confirmation's POST
    pending.refresh_from_db()
    assert pending.status == RolloutTarget.Status.PENDING
    assert not AuditEvent.objects.filter(action="target.skipped").exists()

    response = admin_client.post(skip, {"post": "yes"})
    assert response.status_code == 302 and response["Location"] == detail_url(rollout)
    pending.refresh_from_db()
    assert pending.status == RolloutTarget.Status.SKIPPED
    assert AuditEvent.objects.filter(action="target.skipped", actor_label="admin").count() == 1
    # A skipped target shows the image it stays on, not "?".
    detail = admin_client.get(detail_url(rollout)).content.decode()
    assert "<code>x/y:v1</code> &rarr; <code>subscribie/subscribie:v2</code>" in detail
    assert "<code>?</code>" not in detail

    skip_waiting = reverse("admin:rollouts_rollout_skip", args=[rollout.pk, waiting.pk])
    page = admin_client.get(skip_waiting).content.decode()
    assert "no longer awaited" in page and "not put back" in page
    # Already skipped: nothing to confirm, and a GET changes nothing either way.
    response = admin_client.get(skip, follow=True)
    assert b"only a pending or waiting site can be skipped" in response.content


@pytest.mark.parametrize(
    ("action", "outcome", "status"),
    [
        ("cancel", f"keeps {V2}", Rollout.Status.CANCELLED),
        ("cancel-revert", "goes back to x/y:v1", Rollout.Status.REVERTING),
    ],
)
def test_cancel_names_every_site_and_acts_only_when_confirmed(
    admin_client, db, action, outcome, status
):
    rollout = started([site_row("a", image="x/y:v1"), site_row("b", image="x/y:v0")])
    done = rollout.targets.get(site__slug="a")
    RolloutTarget.objects.filter(pk=done.pk).update(
        status=RolloutTarget.Status.SUCCEEDED, from_image="x/y:v1", generation=2
    )
    detail = admin_client.get(detail_url(rollout)).content.decode()
    assert f'href="{control_url(rollout, action)}"' in detail  # a link, not a one-click form

    page = admin_client.get(control_url(rollout, action)).content.decode()
    assert "skipped: never patched, stays on x/y:v0" in page  # b: pending
    assert outcome in page  # a: already changed
    assert admin_client.post(control_url(rollout, action)).status_code == 200
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING
    assert not AuditEvent.objects.filter(action="rollout.cancel").exists()

    response = admin_client.post(control_url(rollout, action), {"post": "yes"})
    assert response.status_code == 302
    rollout.refresh_from_db()
    assert rollout.status == status
    event = AuditEvent.objects.get(action="rollout.cancel")
    assert event.actor_label == "admin" and event.data["revert"] is (action == "cancel-revert")
    # Finished: the confirmation page says so and offers nothing.
    if status == Rollout.Status.CANCELLED:
        response = admin_client.get(control_url(rollout, action), follow=True)
        assert b"nothing to cancel" in response.content


def test_controls_keep_their_permission_and_csrf(db, django_user_model):
    rollout = started([site_row("a")])
    target = rollout.targets.get()
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_rollout"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    skip = reverse("admin:rollouts_rollout_skip", args=[rollout.pk, target.pk])
    for url in (skip, control_url(rollout, "cancel"), control_url(rollout, "cancel-revert")):
        assert client.get(url).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="control_rollout"))
    client.force_login(django_user_model.objects.get(pk=user.pk))
    for url in (skip, control_url(rollout, "cancel"), control_url(rollout, "cancel-revert")):
        page = client.get(url)
        assert page.status_code == 200 and b'name="post" value="yes"' in page.content
        assert client.post(url, {"post": "yes"}).status_code == 403  # no CSRF token
    rollout.refresh_from_db()
    target.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING
    assert target.status == RolloutTarget.Status.PENDING
    assert client.get(control_url(rollout, "pause")).status_code == 405  # still POST only
