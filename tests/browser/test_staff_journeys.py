"""A staff member's day in a real browser (Chromium via Playwright) against the live server,
kubesim, a CouchDB-compatible server and a real qcluster. Each test asserts what the page shows.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from rollouts import services
from rollouts.models import Rollout
from sites.models import Signup, Site
from sites.sync import signups_sync
from tests.browser.conftest import log_in, mark_page, still_same_page
from tests.fixtures.couchdb import signup_doc
from tests.fixtures.sites import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

V1, V2 = "subscribie/subscribie:v1", "subscribie/subscribie:v2"
BROKEN = "registry.invalid/subscribie:broken"  # kubesim never makes these pods ready
SLOW = 90_000  # ms: rollouts and deploys, on a shared 2-core machine


def summary(page):
    return page.locator("#rollout-summary")


def run_action(page, action: str) -> None:
    page.check("#action-toggle")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def start_fleet_upgrade(
    page, image: str, *, waves: str, approver, auto_revert: bool = True
) -> None:
    """Site list -> "Upgrade the whole fleet…" -> form -> preview -> typed confirmation; a
    whole-fleet upgrade then waits for a second staff member, who approves it in the browser."""
    page.goto("/admin/sites/site/")
    page.click("text=Upgrade the whole fleet…")
    expect(page.locator("h1")).to_have_text("Upgrade all sites")
    page.fill("#id_image", image)
    page.fill("#id_waves", waves)
    page.set_checked("#id_auto_revert", auto_revert)
    page.click("input[value=Preview]")
    expect(page.locator("#content h2").first).to_contain_text(f"Upgrade to {image}")
    expect(page.locator(".rollout-approval-note")).to_contain_text("needs approval")
    page.fill("#confirm_image", image)
    page.click("input[value='Ask for approval']")
    expect(page.locator(".messagelist")).to_contain_text("awaits approval")
    expect(page.locator("#rollout-approval")).to_contain_text("Awaiting approval")
    expect(page.locator("text=Approve…")).to_have_count(0)  # not by its creator
    rollout_url = page.url

    page.context.clear_cookies()  # the second staff member, in the same browser
    log_in(page, approver)
    page.goto(rollout_url)
    page.click("text=Approve…")
    page.click("input[value^='Yes, approve rollout']")
    expect(page.locator(".messagelist")).to_contain_text("approved")
    page.goto(rollout_url)


def test_log_in_and_see_the_fleet_dashboard(page, staff, live_sites, signups_feed):
    live_sites(3, image=V1)
    Site.objects.filter(slug="site-0002").update(hold_reason="launch week")
    signups_feed.bulk_docs([signup_doc("dash-1", "Dash Shop")])
    signups_sync(client=signups_feed)
    log_in(page, staff)
    dashboard = page.locator("#fleet-dashboard")
    expect(dashboard).to_contain_text("Fleet: 3 sites")
    expect(dashboard).to_contain_text("signups to review: 1")
    expect(dashboard).to_contain_text("on hold: 1")
    expect(page.locator("#chart-by-image svg title").first).to_have_text("Sites per image")
    expect(page.locator("#chart-by-image")).to_contain_text(V1)
    expect(page.locator("#chart-by-status")).to_contain_text("live 3")
    expect(page.locator("#chart-over-time")).to_contain_text("Not enough rollout history yet")
    expect(dashboard).to_contain_text("No rollout is running.")


def test_approve_signups_through_the_confirmation_and_watch_them_go_live(
    page, staff, signups_feed, cluster
):
    signups_feed.bulk_docs([signup_doc(f"appr-{i}", f"Approve Shop {i}") for i in range(2)])
    signups_sync(client=signups_feed)
    log_in(page, staff)
    page.goto("/admin/sites/signup/?status__exact=pending")
    run_action(page, "approve_signups")
    expect(page.locator(".confirmation-intro")).to_have_text(
        "2 sites will be created and deployed:"
    )
    expect(page.locator(".confirmation-rows")).to_contain_text("https://approve-shop-0.sites.test")
    page.click("input[value='Yes, approve 2 signups']")
    expect(page.locator(".messagelist")).to_contain_text(
        "Approved 2 signups; deploy queued for: approve-shop-0, approve-shop-1."
    )

    page.goto("/admin/sites/site/")
    mark_page(page)
    badges = page.locator("#result_list .status-badge")
    expect(badges).to_have_count(2)
    # The deploy job and its watcher (in the qcluster) bring them live; the list follows.
    expect(badges.filter(has_text="live")).to_have_count(2, timeout=SLOW)
    expect(page.locator("#result_list td.field-replicas").first).to_have_text("1/1")
    assert still_same_page(page), "the list reloaded instead of updating in place"
    wait_until(lambda: signups_feed.get("appr-0").get("queue_state") == "completed", timeout=60)


def test_whole_fleet_upgrade_paused_resumed_and_watched_to_the_end(
    page, staff, approver, live_sites, kubesim
):
    live_sites(6, image=V1, canary=1)
    kubesim.set_ready_after(1.5)  # slow enough to see the waves move, and to pause in one
    log_in(page, staff)
    start_fleet_upgrade(page, V2, waves="1,50%,100%", approver=approver)
    expect(page.locator("#rollout-waves, .rollout-wave")).to_have_count(3)
    mark_page(page)
    expect(summary(page)).to_contain_text("running")

    page.click("input[value=Pause]")
    expect(summary(page)).to_contain_text("paused")
    expect(page.locator("input[value=Resume]")).to_be_visible()
    rollout = Rollout.objects.get()
    assert rollout.status == Rollout.Status.PAUSED
    page.click("input[value=Resume]")
    expect(summary(page)).to_contain_text("running")

    mark_page(page)
    expect(summary(page)).to_contain_text("6 of 6 settled (100%)", timeout=SLOW)
    expect(summary(page).locator(".rollout-badge")).to_have_text("succeeded")
    assert still_same_page(page), "the rollout page reloaded instead of updating in place"
    for number, total in ((1, 1), (2, 2), (3, 3)):
        expect(page.locator(f"#wave-{number} .wave-settled")).to_have_text(
            f"{total} of {total} settled"
        )
    timeline = page.locator(".rollout-timeline")
    for action in (
        "rollout.approve",
        "rollout.start",
        "rollout.pause",
        "rollout.resume",
        "rollout.succeed",
    ):
        expect(timeline).to_contain_text(action)
    expect(page.locator("input[value=Pause]")).to_have_count(0)  # nothing left to pause
    assert set(Site.objects.values_list("image", flat=True)) == {V2}


def test_roll_back_a_finished_upgrade(page, staff, live_sites, cluster):
    sites = live_sites(3, image=V1)
    upgrade = services.rollout_create(sites=sites, image=V2, waves="1,100%", actor="t")
    services.rollout_start(rollout=upgrade, actor="t")  # the qcluster runs it
    wait_until(lambda: Rollout.objects.get(pk=upgrade.pk).status == "succeeded", timeout=90)
    log_in(page, staff)
    page.goto(f"/admin/rollouts/rollout/{upgrade.pk}/change/")
    page.click("text=Roll back this rollout…")
    expect(page.locator("#rollout-waves")).to_contain_text(f"site-0000 → {V1}")
    page.fill("#confirm_sites", "3")
    page.click("input[value='Start rollback']")
    expect(page.locator(".messagelist")).to_contain_text(f"of rollout #{upgrade.pk} started")
    expect(summary(page)).to_contain_text("each site back to its previous image")
    expect(summary(page).locator(".rollout-badge")).to_have_text("succeeded", timeout=SLOW)
    expect(summary(page)).to_contain_text("3 of 3 settled (100%)")
    page.goto("/admin/sites/site/")
    expect(page.locator("#result_list")).not_to_contain_text(V2)
    assert {snap.image for snap in cluster.list_sites().values()} == {V1}


def test_broken_image_halts_at_the_canary_with_the_reason(
    page, staff, approver, live_sites, settings, kubesim
):
    settings.SITE_PROGRESS_DEADLINE_SECONDS = 4  # the Deployments give up on it quickly
    kubesim.set_fail_images(r"^registry\.invalid/")
    live_sites(4, image=V1, canary=1)
    log_in(page, staff)
    start_fleet_upgrade(page, BROKEN, waves="1,100%", approver=approver, auto_revert=False)
    expect(summary(page).locator(".rollout-badge")).to_have_text("halted", timeout=SLOW)
    expect(page.locator(".rollout-message")).to_contain_text("failure budget exceeded")
    first_wave = page.locator("#wave-1")
    expect(first_wave.locator("tbody tr").first).to_contain_text("site-0000 (canary)")
    expect(first_wave.locator("tbody tr").first.locator(".target-status")).to_have_text("failed")
    expect(first_wave.locator(".target-error")).to_contain_text(re.compile("progress deadline"))
    expect(page.locator("#wave-2 .target-status").first).to_have_text("skipped")
    expect(page.locator(".rollout-timeline")).to_contain_text("rollout.halt")
    assert Site.objects.get(slug="site-0001").image == V1  # past the canary, nothing changed


def test_a_view_only_user_sees_no_buttons_that_change_state(page, viewer, live_sites, db):
    sites = live_sites(2, image=V1)
    Signup.objects.create(couch_id="v-1", status="pending", company_name="Viewer Shop",
                          requested_name="viewer-shop", owner_email="v@example.com")  # fmt: skip
    rollout = services.rollout_create(sites=sites, image=V2, waves="100%", actor="t")
    services.rollout_start(rollout=rollout, actor="t", enqueue=False)  # stays running
    log_in(page, viewer)
    expect(page.locator("#fleet-dashboard")).to_contain_text("Fleet: 2 sites")

    page.goto("/admin/sites/site/")
    expect(page.locator("#result_list")).to_contain_text("site-0000")
    expect(page.locator("select[name=action]")).to_have_count(0)
    expect(page.locator("text=Upgrade the whole fleet…")).to_have_count(0)
    page.goto("/admin/sites/signup/")
    expect(page.locator("#result_list")).to_contain_text("Viewer Shop")
    expect(page.locator("select[name=action]")).to_have_count(0)

    page.goto(f"/admin/rollouts/rollout/{rollout.pk}/change/")
    expect(summary(page)).to_contain_text("running")
    controls = page.locator(".rollout-controls")
    expect(controls.locator("input, a")).to_have_count(0)
    expect(page.locator("text=Skip…")).to_have_count(0)
    page.goto(f"/admin/sites/site/{sites[0].pk}/change/")
    expect(page.locator("#site-kubernetes")).to_contain_text("Kubernetes")
    expect(page.locator("input[type=submit]")).to_have_count(0)
