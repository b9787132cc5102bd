"""``make screenshots``: PNGs of the main pages, from a seeded demo state, into docs/screenshots/.

Not part of the suite (pytest collects only ``test_*.py``); ``make screenshots`` runs this file
explicitly. The state is made by the product's own services and engine on kubesim, in this
process: a finished upgrade, a broken image halted at its canary, a whole-fleet upgrade paused
mid-way, and signups waiting for review.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rollouts import engine, services
from rollouts.models import Rollout
from sites.models import Signup, Site
from sites.services import sites_refresh_status
from sites.sync import signups_sync
from tests.browser.conftest import log_in
from tests.fixtures.couchdb import signup_doc
from tests.fixtures.rollouts import start_approved

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
V1, V2, V3 = ("subscribie/subscribie:v1", "subscribie/subscribie:v2", "subscribie/subscribie:v3")
BROKEN = "registry.invalid/subscribie:v4-broken"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@pytest.fixture
def screen(browser, live_server):
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 860}, device_scale_factor=1
    )
    # The admin's nav sidebar collapsed, so the pages show their content at full width.
    context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page = context.new_page()
    yield page
    context.close()


def upgrade(sites, image, *, waves, pause_after_wave=None, cluster, **kwargs) -> Rollout:
    rollout = services.rollout_create(
        sites=sites, image=image, waves=waves, actor="alice", whole_fleet=True, **kwargs
    )
    start_approved(rollout, actor="alice")  # a whole-fleet upgrade: approved by a second user

    def maybe_pause(current: Rollout) -> None:
        due = pause_after_wave is not None and current.current_wave >= pause_after_wave
        if due and current.status == Rollout.Status.RUNNING:
            services.rollout_pause(rollout=current, actor="alice")

    return engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.1, progress=maybe_pause)


def seed(live_sites, cluster, kubesim, signups_feed, settings, staff) -> dict[str, Rollout]:
    settings.SITE_PROGRESS_DEADLINE_SECONDS = 3
    kubesim.set_fail_images(r"^registry\.invalid/")
    live_sites(24, image=V1, canary=2, prefix="shop")
    Site.objects.filter(slug="shop-0007").update(hold_reason="launch week: no changes")
    first = upgrade(Site.objects.all(), V2, waves="2,50%,100%", cluster=cluster).rollout
    halted = upgrade(
        Site.objects.filter(slug__in=["shop-0000", "shop-0001", "shop-0010", "shop-0011"]),
        BROKEN, waves="1,100%", auto_revert=False, cluster=cluster,
    ).rollout  # fmt: skip
    paused = upgrade(
        Site.objects.all(), V3, waves="2,25%,60%,100%", pause_after_wave=2, cluster=cluster
    ).rollout
    signups_feed.bulk_docs(
        [
            signup_doc(f"demo-{i}", name)
            for i, name in enumerate(["Bakery Box", "Tea Club", "Sock Drawer"])
        ]
    )
    signups_sync(client=signups_feed)
    sites_refresh_status(cluster=cluster)  # what the every-minute status refresh would show
    return {"first": first, "halted": halted, "paused": paused}


def test_screenshots(screen, staff, live_sites, cluster, kubesim, signups_feed, settings):
    rollouts = seed(live_sites, cluster, kubesim, signups_feed, settings, staff)
    OUT.mkdir(parents=True, exist_ok=True)
    page = screen
    log_in(page, staff)

    def shot(name: str, url: str | None = None, *, full_page: bool = False) -> None:
        if url:
            page.goto(url)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(OUT / f"{name}.png"), full_page=full_page)

    shot("dashboard", "/admin/", full_page=True)
    shot("sites", "/admin/sites/site/")
    shot(
        "site", f"/admin/sites/site/{Site.objects.get(slug='shop-0000').pk}/change/", full_page=True
    )
    shot("rollout-paused", f"/admin/rollouts/rollout/{rollouts['paused'].pk}/change/")
    shot("rollout-halted", f"/admin/rollouts/rollout/{rollouts['halted'].pk}/change/")
    shot("rollouts", "/admin/rollouts/rollout/")

    page.goto("/admin/sites/signup/?status__exact=pending")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "approve_signups")
    page.click("button[name=index]")
    shot("approve-confirmation")

    Rollout.objects.filter(pk=rollouts["paused"].pk).update(status="cancelled")  # free the sites
    page.goto("/admin/rollouts/rollout/upgrade-all/")
    page.fill("#id_image", "subscribie/subscribie:v5")
    page.click("input[value=Preview]")
    shot("upgrade-preview")
    assert Signup.objects.filter(status="pending").count() == 3  # nothing was approved
    assert sorted(p.name for p in OUT.glob("*.png")) == sorted(
        f"{name}.png"
        for name in ("dashboard", "sites", "site", "rollout-paused", "rollout-halted",
                     "rollouts", "approve-confirmation", "upgrade-preview")
    )  # fmt: skip
