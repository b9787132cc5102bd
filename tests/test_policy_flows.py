"""Bake and maintenance windows from the outside: signup documents, the Site admin, the
upgrade form and preview, the progress page and ``fleet_upgrade``."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from audit.models import AuditEvent
from rollouts import services
from rollouts.management.follow import describe
from rollouts.models import Rollout
from sites.models import Signup, Site
from sites.services import signups_approve
from sites.sync import ClaimedNames, apply_validation
from sites.validation import validate_signup
from tests.fixtures.rollouts import site_row
from tests.test_rollout_admin import FORM, UPGRADE_URL, select
from tests.test_sites_admin import login, make_site  # noqa: F401 - login is a fixture

V2 = "subscribie/subscribie:v2"
DOC = {"queue_state": "deploy", "company": {"name": "Bob's Bakery"}, "users": ["o@example.com"]}


# --- signups --------------------------------------------------------------------------------


def test_signup_window_is_validated_and_stored_canonical() -> None:
    result = validate_signup(
        {**DOC, "maintenance_window": " sunday 2:00-05:00 Europe/London"}, base_domain="s.test"
    )
    assert result.ok and result.signup.maintenance_window == "Sun 02:00-05:00 Europe/London"
    assert validate_signup(DOC, base_domain="s.test").signup.maintenance_window is None


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        ("Sun 02:00-05:00 Narnia/Cair", "maintenance_window: unknown time zone 'Narnia/Cair'"),
        ("Funday 02:00-05:00 UTC", "maintenance_window: 'Funday' is not a day name"),
        (
            "Sun 02:00-05:00\nUTC",
            "maintenance_window: the maintenance window 'Sun 02:00-05:00\\nUTC'",
        ),
        (["Sun"], "maintenance_window must be a string (got array)"),
    ],
)
def test_bad_signup_window_rejects_with_a_reason(window, reason) -> None:
    result = validate_signup({**DOC, "maintenance_window": window}, base_domain="s.test")
    assert not result.ok
    assert any(r.startswith(reason) for r in result.reasons), result.reasons


def test_approved_signup_gives_its_site_the_window(db, settings) -> None:
    settings.SITES_BASE_DOMAIN = "s.test"
    signup = Signup(couch_id="signup-bob", raw=DOC)
    doc = {**DOC, "maintenance_window": "Sat,Sun 01:00-03:00 Australia/Sydney"}
    apply_validation(signup, doc, claimed=ClaimedNames(names=set(), domains=set()))
    signup.save()
    [site] = signups_approve(signups=[signup], actor="tester")
    assert site.maintenance_window == "Sat,Sun 01:00-03:00 Australia/Sydney"


# --- Site admin ---------------------------------------------------------------------------


def test_staff_set_a_sites_window_in_the_admin(db, login):  # noqa: F811
    client = login("view_site", "change_site")
    site = make_site("bakery")
    url = reverse("admin:sites_site_change", args=[site.pk])
    assert 'name="maintenance_window"' in client.get(url).content.decode()

    response = client.post(url, {"maintenance_window": "Sun 02:00-05:00 Europe/Londn"})
    assert response.status_code == 200
    assert "unknown time zone" in response.content.decode()
    site.refresh_from_db()
    assert site.maintenance_window == ""

    response = client.post(url, {"maintenance_window": "sun 2:00-5:00 Europe/London"})
    assert response.status_code == 302
    site.refresh_from_db()
    assert site.maintenance_window == "Sun 02:00-05:00 Europe/London"
    event = AuditEvent.objects.get(action="site.maintenance_window")
    assert event.data == {"before": "", "after": "Sun 02:00-05:00 Europe/London"}


# --- fleet_upgrade --------------------------------------------------------------------------


def test_fleet_upgrade_bake_and_respect_windows(db, engine_clock):
    now = engine_clock.now
    site_row("a", maintenance_window="daily 00:00-24:00 UTC")
    site_row("b", maintenance_window=f"{now + timedelta(days=1):%a} 03:00-04:00 UTC")
    site_row("c")
    out = StringIO()
    call_command(
        "fleet_upgrade", "--image", V2, "--all", "--waves", "100%", "--bake", "120",
        "--respect-windows", "--dry-run", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "bake 120s after each wave; maintenance windows respected" in text
    opens = (now + timedelta(days=1)).replace(hour=3, minute=0, second=0, microsecond=0)
    assert (
        f"windows: 1 in their window now; 1 without a window; 1 open {opens:%a %Y-%m-%d} 03:00 UTC"
    ) in text
    assert not Rollout.objects.exists()

    call_command(
        "fleet_upgrade", "--image", V2, "--all", "--bake", "120", "--respect-windows",
        stdout=StringIO(),
    )  # fmt: skip
    rollout = Rollout.objects.get()
    assert (rollout.bake_seconds, rollout.respect_windows) == (120, True)


# --- upgrade form, preview and progress page ------------------------------------------------


def test_upgrade_form_previews_bake_and_windows_and_starts_with_them(
    admin_client, live_sites, cluster, engine_clock
):
    sites = live_sites(2)
    Site.objects.filter(slug="site-0001").update(maintenance_window="daily 00:00-24:00 UTC")
    select(admin_client, "upgrade_selected_sites", sites)
    data = {**FORM, "bake": "120", "respect_windows": "on"}
    page = admin_client.post(UPGRADE_URL, {**data, "stage": "preview"}).content.decode()
    assert "bake 120s after each wave" in page and "maintenance windows respected" in page
    assert '<td class="wave-bake">120s</td>' in page
    assert "0 in their window now, 1 without one</td><td>site-0000" in page  # wave 1
    assert "1 in their window now, 0 without one</td><td>site-0001" in page  # wave 2
    assert 'name="respect_windows" value="on"' in page and 'name="bake" value="120"' in page

    response = admin_client.post(UPGRADE_URL, {**data, "stage": "confirm"})
    assert response.status_code == 302
    rollout = Rollout.objects.get()
    assert (rollout.bake_seconds, rollout.respect_windows) == (120, True)

    # While its wave bakes, the progress page counts down (with the engine's clock).
    Rollout.objects.filter(pk=rollout.pk).update(bake_started_at=engine_clock.now)
    engine_clock.advance(seconds=20)
    detail = admin_client.get(reverse("admin:rollouts_rollout_change", args=[rollout.pk]))
    assert "Wave 1: baking: 1m 40s left of 120s" in detail.content.decode()
    assert "  wave 1: a 120s bake starts once the wave is healthy" in describe(rollout)
    rollout.refresh_from_db()
    assert "  wave 1: baking: 1m 40s left of 120s" in describe(rollout)  # rollout_status


def test_a_negative_bake_is_refused(db):
    site_row("a")
    with pytest.raises(services.PlanError, match="bake time"):
        services.rollout_plan(sites=Site.objects.all(), image=V2, bake=-1)
