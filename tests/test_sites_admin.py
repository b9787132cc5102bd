"""Signup and site admin: permissions, confirmation pages, services called, audit, escaping.

Real ORM and the Django test client with logged-in staff users; services queue their jobs with
``transaction.on_commit`` (captured here, never run), so no cluster or CouchDB is touched.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from sites.models import Signup, Site

pytestmark = pytest.mark.django_db

SIGNUPS_URL = reverse("admin:sites_signup_changelist")
SITES_URL = reverse("admin:sites_site_changelist")


# --- fixtures --------------------------------------------------------------------------------


def make_staff(username: str, *codenames: str):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw-123456")
    user.is_staff = True
    user.save()
    wanted = [name if "." in name else f"sites.{name}" for name in codenames]
    user.user_permissions.set(
        [
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codename in (name.split(".") for name in wanted)
        ]
    )
    return user


@pytest.fixture
def login(client):
    def do(*codenames: str, username: str = "staff") -> Client:
        client.force_login(make_staff(username, *codenames))
        return client

    return do


def valid_doc(couch_id: str, company: str, **extra) -> dict:
    return {
        "_id": couch_id,
        "queue_state": "deploy",
        "company": {"name": company},
        "users": [f"owner@{couch_id}.example.com"],
        "theme": {"name": "jesmond", "colour": "#aa3355"},
        "plans": [{"title": "Monthly box", "price": 1500, "interval": "month"}],
        **extra,
    }


def make_signup(name: str, *, status=Signup.Status.PENDING, raw=None, **fields) -> Signup:
    couch_id = f"signup-{name}"
    defaults = {
        "raw": raw if raw is not None else valid_doc(couch_id, name.title()),
        "status": status,
        "company_name": name.title(),
        "requested_name": name,
        "owner_email": f"owner@{couch_id}.example.com",
        "theme_name": "jesmond",
        "theme_colour": "#aa3355",
    }
    return Signup.objects.create(couch_id=couch_id, **{**defaults, **fields})


def make_site(slug: str, *, status=Site.Status.LIVE, **fields) -> Site:
    defaults = {
        "title": slug.title(),
        "owner_email": f"owner@{slug}.example.com",
        "theme_name": "jesmond",
        "theme_colour": "#aa3355",
        "image": "subscribie/subscribie:v1",
        "status": status,
    }
    return Site.objects.create(slug=slug, **{**defaults, **fields})


def run_action(client: Client, url: str, action: str, objects, **extra):
    """What the changelist's action bar POSTs (the "Go" button carries ``index``)."""
    data = {"action": action, "index": "0", "_selected_action": [o.pk for o in objects], **extra}
    return client.post(url, data)


def confirm_action(client: Client, url: str, action: str, objects, **extra):
    """What a confirmation page POSTs back."""
    data = {"action": action, "post": "yes", "_selected_action": [o.pk for o in objects], **extra}
    return client.post(url, data)


def action_names(client: Client, url: str) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200
    return {name for name, _ in response.context["action_form"].fields["action"].choices if name}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


# --- signups: approve ------------------------------------------------------------------------


def test_approve_needs_permission(login):
    client = login("view_signup", "change_signup", "reject_signup")
    signup = make_signup("bakery")
    assert "approve_signups" not in action_names(client, SIGNUPS_URL)
    response = run_action(client, SIGNUPS_URL, "approve_signups", [signup])
    assert response.status_code == 302
    signup.refresh_from_db()
    assert signup.status == Signup.Status.PENDING
    assert not Site.objects.exists()
    assert not AuditEvent.objects.exists()


def test_admin_needs_view_permission(login):
    client = login("approve_signup", "deploy_site")
    assert client.get(SIGNUPS_URL).status_code == 403
    assert client.get(SITES_URL).status_code == 403


def test_approve_confirms_then_creates_sites(login, settings, django_capture_on_commit_callbacks):
    settings.SITES_BASE_DOMAIN = "sites.test"
    client = login("view_signup", "approve_signup")
    bakery, florist = make_signup("bakery"), make_signup("florist")
    rejected = make_signup("nope", status=Signup.Status.REJECTED, reasons=["bad"])

    page = run_action(client, SIGNUPS_URL, "approve_signups", [bakery, florist, rejected])
    assert page.status_code == 200
    assert "admin/sites/action_confirmation.html" in [t.name for t in page.templates]
    html = page.content.decode()
    for text in ("bakery", "Bakery", "https://bakery.sites.test", "https://florist.sites.test"):
        assert text in html
    assert "https://nope.sites.test" not in html
    assert 'name="csrfmiddlewaretoken"' in html
    # Only the pending signups are carried to the confirming POST.
    assert [r[0] for r in page.context["page"].rows] == [bakery.pk, florist.pk]
    # Nothing changed yet.
    assert not Site.objects.exists()
    assert set(Signup.objects.values_list("status", flat=True)) == {"pending", "rejected"}
    assert not AuditEvent.objects.exists()

    with django_capture_on_commit_callbacks() as callbacks:
        done = confirm_action(client, SIGNUPS_URL, "approve_signups", [bakery, florist])
    assert done.status_code == 302
    assert len(callbacks) == 2  # one deploy job per site
    sites = Site.objects.order_by("slug")
    assert [(s.slug, s.status, s.signup_id) for s in sites] == [
        ("bakery", Site.Status.DEPLOYING, bakery.pk),
        ("florist", Site.Status.DEPLOYING, florist.pk),
    ]
    assert Signup.objects.get(pk=bakery.pk).status == Signup.Status.APPROVED
    events = AuditEvent.objects.filter(action="signup.approve")
    assert sorted(e.subject for e in events) == ["bakery", "florist"]
    assert {e.actor_label for e in events} == {"staff"}
    assert any("Approved 2 signups" in m for m in messages_of(done))


def test_approve_confirmation_post_needs_csrf(login):
    login("view_signup", "approve_signup")
    signup = make_signup("bakery")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(get_user_model().objects.get(username="staff"))
    response = confirm_action(strict, SIGNUPS_URL, "approve_signups", [signup])
    assert response.status_code == 403
    assert Signup.objects.get(pk=signup.pk).status == Signup.Status.PENDING
    assert not Site.objects.exists()


def test_approve_skips_a_name_already_taken_by_a_site(login):
    client = login("view_signup", "approve_signup")
    make_site("bakery")
    signup = make_signup("bakery")
    response = run_action(client, SIGNUPS_URL, "approve_signups", [signup])
    assert response.status_code == 302
    assert any("already exists" in m for m in messages_of(response))
    assert Signup.objects.get(pk=signup.pk).status == Signup.Status.PENDING


# --- signups: reject, re-validate, edit ---------------------------------------------------


def test_reject_needs_permission(login):
    client = login("view_signup", "approve_signup")
    signup = make_signup("bakery")
    names = action_names(client, SIGNUPS_URL)
    assert "reject_signups" not in names
    assert "revalidate_signups" not in names  # re-validating needs the change permission
    run_action(client, SIGNUPS_URL, "reject_signups", [signup])
    confirm_action(client, SIGNUPS_URL, "reject_signups", [signup], **{"confirm-reason": "x"})
    assert Signup.objects.get(pk=signup.pk).status == Signup.Status.PENDING
    assert not AuditEvent.objects.exists()


def test_reject_requires_a_reason(login):
    client = login("view_signup", "reject_signup")
    signup = make_signup("bakery")
    page = run_action(client, SIGNUPS_URL, "reject_signups", [signup])
    assert page.status_code == 200
    assert 'name="confirm-reason"' in page.content.decode()

    blank = confirm_action(
        client, SIGNUPS_URL, "reject_signups", [signup], **{"confirm-reason": " "}
    )
    assert blank.status_code == 200
    assert blank.context["page"].form.errors["reason"]
    assert Signup.objects.get(pk=signup.pk).status == Signup.Status.PENDING
    assert not AuditEvent.objects.exists()

    done = confirm_action(
        client, SIGNUPS_URL, "reject_signups", [signup], **{"confirm-reason": "spam signup"}
    )
    assert done.status_code == 302
    signup.refresh_from_db()
    assert signup.status == Signup.Status.REJECTED
    assert signup.writeback == Signup.WriteBack.PENDING
    assert "rejected by staff: spam signup" in signup.reasons
    event = AuditEvent.objects.get(action="signup.reject")
    assert (event.subject, event.data) == (signup.couch_id, {"reason": "spam signup"})


def test_revalidate_action(login):
    client = login("view_signup", "change_signup")
    stale = make_signup("bakery", status=Signup.Status.REJECTED, reasons=["name taken"])
    response = run_action(client, SIGNUPS_URL, "revalidate_signups", [stale])
    assert response.status_code == 302
    stale.refresh_from_db()
    assert (stale.status, stale.reasons) == (Signup.Status.PENDING, [])
    assert AuditEvent.objects.filter(action="signup.revalidate", subject=stale.couch_id).exists()


def test_editing_the_requested_name_revalidates(login):
    client = login("view_signup", "change_signup")
    signup = make_signup("bakery")
    url = reverse("admin:sites_signup_change", args=[signup.pk])
    response = client.post(url, {"requested_name": "bobs-bakery", "company_name": "ignored"})
    assert response.status_code == 302
    signup.refresh_from_db()
    assert (signup.requested_name, signup.status) == ("bobs-bakery", Signup.Status.PENDING)
    assert signup.company_name == "Bakery"  # read-only fields are not taken from the form
    event = AuditEvent.objects.get(action="signup.revalidate")
    assert event.data["site_name"] == "bobs-bakery"


def test_an_approved_signup_name_is_read_only(login):
    client = login("view_signup", "change_signup")
    signup = make_signup("bakery", status=Signup.Status.APPROVED)
    url = reverse("admin:sites_signup_change", args=[signup.pk])
    assert 'name="requested_name"' not in client.get(url).content.decode()
    client.post(url, {"requested_name": "other"})
    assert Signup.objects.get(pk=signup.pk).requested_name == "bakery"
    assert not AuditEvent.objects.exists()


def test_signups_cannot_be_added_or_deleted(admin_client):
    signup = make_signup("bakery")
    assert admin_client.get(reverse("admin:sites_signup_add")).status_code == 403
    delete_url = reverse("admin:sites_signup_delete", args=[signup.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert "delete_selected" not in action_names(admin_client, SIGNUPS_URL)
    assert Signup.objects.filter(pk=signup.pk).exists()


def test_hostile_document_is_escaped(admin_client):
    script = "<script>alert(1)</script>"
    signup = make_signup(
        "bakery",
        status=Signup.Status.REJECTED,
        raw={"company": {"name": script}, "users": [script]},
        company_name=script,
        reasons=[f"bad name {script}"],
        pending_change={"site_name": script},
    )
    change = admin_client.get(reverse("admin:sites_signup_change", args=[signup.pk]))
    html = change.content.decode()
    assert script not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<pre" in html  # pretty-printed
    listing = admin_client.get(SIGNUPS_URL).content.decode()
    assert script not in listing
    page = run_action(admin_client, SIGNUPS_URL, "reject_signups", [signup]).content.decode()
    assert script not in page
    assert "&lt;script&gt;" in page


# --- sites: actions ----------------------------------------------------------------------------

SITE_ACTIONS = [
    # action, permission, site fields before, confirmation page?, expected change, audit action
    (
        "deploy_sites",
        "deploy_site",
        {"status": "failed"},
        True,
        {"status": "deploying"},
        "site.deploy",
    ),
    (
        "suspend_sites",
        "suspend_site",
        {"status": "live"},
        True,
        {"status": "suspended"},
        "site.suspend",
    ),
    (
        "resume_sites",
        "suspend_site",
        {"status": "suspended"},
        False,
        {"status": "deploying"},
        "site.resume",
    ),
    (
        "delete_sites",
        "remove_site",
        {"status": "live"},
        True,
        {"status": "deleting"},
        "site.delete",
    ),
    (
        "verify_domains",
        "verify_domain",
        {"status": "live", "custom_domain": "shop.example.org"},
        True,
        {"custom_domain_verified": True, "status": "deploying"},
        "site.verify_domain",
    ),
    (
        "unhold_sites",
        "hold_site",
        {"status": "live", "hold_reason": "black friday"},
        False,
        {"hold_reason": ""},
        "site.unhold",
    ),
]


def site_values(site: Site, fields) -> dict:
    site.refresh_from_db()
    return {name: getattr(site, name) for name in fields}


@pytest.mark.parametrize(("action", "perm", "before", "confirm", "after", "event"), SITE_ACTIONS)
def test_site_action_needs_its_permission(login, action, perm, before, confirm, after, event):
    others = {p for _, p, *_ in SITE_ACTIONS} - {perm}
    client = login("view_site", "change_site", *others)
    site = make_site("bakery", **before)
    assert action not in action_names(client, SITES_URL)
    run_action(client, SITES_URL, action, [site])
    confirm_action(client, SITES_URL, action, [site])
    assert site_values(site, before) == before
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(("action", "perm", "before", "confirm", "after", "event"), SITE_ACTIONS)
def test_site_action_confirms_then_calls_the_service(
    login, django_capture_on_commit_callbacks, action, perm, before, confirm, after, event
):
    client = login("view_site", perm)
    site = make_site("bakery", **before)
    assert action in action_names(client, SITES_URL)
    if confirm:
        page = run_action(client, SITES_URL, action, [site])
        assert page.status_code == 200
        assert page.context["page"].action == action
        assert "bakery" in page.content.decode()
        assert site_values(site, before) == before  # nothing changes before confirming
        assert not AuditEvent.objects.exists()
        with django_capture_on_commit_callbacks():
            response = confirm_action(client, SITES_URL, action, [site])
    else:
        with django_capture_on_commit_callbacks():
            response = run_action(client, SITES_URL, action, [site])
    assert response.status_code == 302
    assert site_values(site, after) == after
    audit_event = AuditEvent.objects.get(action=event)
    assert (audit_event.site_id, audit_event.actor_label) == (site.pk, "staff")
    assert messages_of(response)


def test_site_action_skips_ineligible_sites_and_counts(login):
    client = login("view_site", "suspend_site")
    live, deleted = make_site("live-one"), make_site("gone", status=Site.Status.DELETED)
    page = run_action(client, SITES_URL, "suspend_sites", [live, deleted])
    assert [pk for pk, _ in page.context["page"].rows] == [live.pk]
    assert page.context["page"].skipped == [("gone", "status deleted")]
    done = confirm_action(client, SITES_URL, "suspend_sites", [live])
    assert "Suspending 1 site (scaled to zero)." in messages_of(done)
    assert Site.objects.get(pk=deleted.pk).status == Site.Status.DELETED


def test_delete_confirmation_names_every_site(login):
    client = login("view_site", "remove_site")
    sites = [make_site(f"shop-{i}") for i in range(4)]
    page = run_action(client, SITES_URL, "delete_sites", sites)
    html = page.content.decode()
    for site in sites:
        assert site.slug in html
    assert set(Site.objects.values_list("status", flat=True)) == {"live"}
    confirm_action(client, SITES_URL, "delete_sites", sites)
    assert set(Site.objects.values_list("status", flat=True)) == {"deleting"}
    assert AuditEvent.objects.filter(action="site.delete").count() == 4
    assert Site.objects.count() == 4  # rows stay for the audit history


def test_hold_requires_a_reason(login):
    client = login("view_site", "hold_site")
    site = make_site("bakery")
    page = run_action(client, SITES_URL, "hold_sites", [site])
    assert page.status_code == 200
    assert 'name="confirm-reason"' in page.content.decode()

    blank = confirm_action(client, SITES_URL, "hold_sites", [site], **{"confirm-reason": ""})
    assert blank.status_code == 200
    assert blank.context["page"].form.errors["reason"]
    past = confirm_action(
        client,
        SITES_URL,
        "hold_sites",
        [site],
        **{"confirm-reason": "x", "confirm-until": "2001-01-01T00:00"},
    )
    assert past.context["page"].form.errors["until"]
    assert site_values(site, ["hold_reason"]) == {"hold_reason": ""}
    assert not AuditEvent.objects.exists()

    done = confirm_action(
        client,
        SITES_URL,
        "hold_sites",
        [site],
        **{"confirm-reason": "customer migration", "confirm-until": "2099-01-01T12:30"},
    )
    assert done.status_code == 302
    site.refresh_from_db()
    assert site.hold_reason == "customer migration"
    assert (site.hold_until.year, site.hold_until.hour, site.hold_until.minute) == (2099, 12, 30)
    assert AuditEvent.objects.get(action="site.hold").data["reason"] == "customer migration"

    no_expiry = make_site("florist")
    confirm_action(client, SITES_URL, "hold_sites", [no_expiry], **{"confirm-reason": "audit"})
    no_expiry.refresh_from_db()
    assert (no_expiry.hold_reason, no_expiry.hold_until) == ("audit", None)


def test_sites_cannot_be_added_or_deleted(admin_client):
    site = make_site("bakery")
    assert admin_client.get(reverse("admin:sites_site_add")).status_code == 403
    delete_url = reverse("admin:sites_site_delete", args=[site.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    names = action_names(admin_client, SITES_URL)
    assert "delete_selected" not in names
    assert {"deploy_sites", "delete_sites", "hold_sites", "verify_domains"} <= names
    assert Site.objects.filter(pk=site.pk).exists()


def test_rollout_actions_are_offered_only_with_their_permissions(login):
    rollout_actions = {"upgrade_selected_sites", "upgrade_all_sites", "rollback_selected_sites"}
    client = login("view_site", "deploy_site")
    assert not rollout_actions & action_names(client, SITES_URL)
    client = login("view_site", "rollouts.start_rollout", username="upgrader")
    assert action_names(client, SITES_URL) & rollout_actions == {
        "upgrade_selected_sites",
        "upgrade_all_sites",
    }
    client = login("view_site", "rollouts.rollback_rollout", username="reverter")
    assert action_names(client, SITES_URL) & rollout_actions == {"rollback_selected_sites"}


def test_site_change_form_only_edits_canary(login):
    client = login("view_site", "change_site")
    site = make_site("bakery")
    url = reverse("admin:sites_site_change", args=[site.pk])
    form_html = client.get(url).content.decode()
    assert 'name="canary"' in form_html
    assert 'name="title"' not in form_html
    assert 'name="hold_reason"' not in form_html
    response = client.post(url, {"canary": "on", "title": "Hacked", "status": "deleted"})
    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.canary, site.title, site.status) == (True, "Bakery", Site.Status.LIVE)
    assert AuditEvent.objects.get(action="site.canary").data == {"canary": True}


# --- sites: changelist ---------------------------------------------------------------------


def add_sites(start: int, count: int) -> None:
    for i in range(start, start + count):
        make_site(
            f"site-{i:03d}",
            status=[Site.Status.LIVE, Site.Status.FAILED, Site.Status.SUSPENDED][i % 3],
            image=f"subscribie/subscribie:v{i % 2 + 1}",
            observed_image="subscribie/subscribie:v0" if i % 4 == 0 else "",
            hold_reason="freeze" if i % 5 == 0 else "",
            canary=i % 7 == 0,
            signup=make_signup(f"signup-{i:03d}", status=Signup.Status.APPROVED),
        )


def changelist_queries(client: Client, query: str = "") -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(SITES_URL + query)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_site_changelist_query_count_is_constant(admin_client):
    add_sites(0, 5)
    few = changelist_queries(admin_client)
    few_filtered = changelist_queries(admin_client, "?on_hold=yes&status__exact=live")
    add_sites(5, 45)
    assert changelist_queries(admin_client) == few
    assert changelist_queries(admin_client, "?on_hold=yes&status__exact=live") == few_filtered


def test_site_changelist_shows_badges_drift_hold_and_overview(admin_client):
    make_site("drifter", observed_image="subscribie/subscribie:v0")
    make_site("steady", observed_image="subscribie/subscribie:v1", hold_reason="<b>freeze</b>")
    make_site("broken", status=Site.Status.FAILED, image="subscribie/subscribie:v2")
    make_site("gone", status=Site.Status.DELETED, image="subscribie/subscribie:v0")
    response = admin_client.get(SITES_URL)
    html = response.content.decode()
    assert "status-badge status-live" in html and "status-badge status-failed" in html
    assert html.count('class="image-drift"') == 1
    assert "&lt;b&gt;freeze&lt;/b&gt;" in html and "<b>freeze</b>" not in html
    overview = response.context["fleet_overview"]
    counts = {row["value"]: row["count"] for row in overview["statuses"]}
    assert (counts["live"], counts["failed"], counts["deleted"], counts["deploying"]) == (
        2,
        1,
        1,
        0,
    )
    assert overview["total"] == 4
    assert [(r["image"], r["count"]) for r in overview["images"]] == [
        ("subscribie/subscribie:v1", 2),
        ("subscribie/subscribie:v2", 1),
    ]
    assert 'class="module fleet-overview"' in html

    on_hold = admin_client.get(SITES_URL + "?on_hold=yes")
    assert [s.slug for s in on_hold.context["cl"].result_list] == ["steady"]
    by_image = admin_client.get(SITES_URL + "?image=subscribie/subscribie:v2")
    assert [s.slug for s in by_image.context["cl"].result_list] == ["broken"]
