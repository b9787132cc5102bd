"""The site page (what Kubernetes last reported, every image it ran and through what) and the
status endpoint the Site list polls while deploys settle."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

import audit
from rollouts import services
from rollouts.models import RolloutTarget
from sites.models import Signup, Site
from tests.fixtures.rollouts import site_row

pytestmark = pytest.mark.django_db
V2 = "subscribie/subscribie:v2"


def test_site_page_shows_cluster_status_history_and_signup(admin_client):
    signup = Signup.objects.create(couch_id="doc-1", status="approved", company_name="Shop")
    site = site_row("shop", image="x/y:v1", signup=signup, observed_image="x/y:v1",
                    observed_revision=3, ready_replicas=1, observed_at=timezone.now())  # fmt: skip
    audit.record(action="signup.approve", actor="alice", site=site, data={"image": "x/y:v1"})
    rollout = services.rollout_create(sites=[site], image=V2, actor="bob")
    services.rollout_start(rollout=rollout, actor="bob", enqueue=False)
    RolloutTarget.objects.filter(rollout=rollout).update(
        status="failed", from_image="x/y:v1", last_error="ProgressDeadlineExceeded",
        patched_at=timezone.now(),
    )  # fmt: skip
    page = admin_client.get(reverse("admin:sites_site_change", args=[site.pk])).content.decode()
    kube = page[page.index('id="site-kubernetes"') :]
    assert "1/1 ready, running <code>x/y:v1</code> (revision 3)" in kube
    assert reverse("admin:sites_signup_change", args=[signup.pk]) in kube
    history = page[page.index('id="site-history"') :]
    # Newest first: the failed upgrade with its reason and who started it, then the deploy.
    assert history.index(f"upgrade #{rollout.pk}") < history.index("deploy")
    assert "ProgressDeadlineExceeded" in history and "bob" in history and "alice" in history
    assert "<code>x/y:v1</code> &rarr; <code>subscribie/subscribie:v2</code>" in history


def test_site_page_without_history_says_so(admin_client):
    site = site_row("quiet")
    page = admin_client.get(reverse("admin:sites_site_change", args=[site.pk])).content.decode()
    assert "No deploys or rollouts recorded for this site yet." in page
    assert "Not observed in the cluster yet." in page
    assert admin_client.get(reverse("admin:sites_site_change", args=[999])).status_code == 302


def test_status_endpoint_reports_listed_sites_and_whether_they_settled(admin_client, client):
    deploying = site_row("a", status=Site.Status.DEPLOYING)
    live = site_row("b")
    url = reverse("admin:sites_site_statuses")
    data = admin_client.get(f"{url}?ids={deploying.pk},{live.pk},x").json()
    assert data["sites"][str(deploying.pk)]["label"] == "deploying"
    assert data["sites"][str(live.pk)]["ready"] == "0/1" and data["settled"] is False
    Site.objects.filter(pk=deploying.pk).update(status=Site.Status.LIVE)
    assert admin_client.get(f"{url}?ids={deploying.pk}").json()["settled"] is True
    assert client.get(f"{url}?ids={live.pk}").status_code == 302  # not logged in: to login


def test_empty_lists_say_what_to_do(admin_client):
    rollouts = admin_client.get("/admin/rollouts/rollout/").content.decode()
    assert "No rollouts yet." in rollouts and "Upgrade the whole fleet…" in rollouts
    signups = admin_client.get("/admin/sites/signup/").content.decode()
    assert "No signups yet." in signups and "manage.py sync_signups" in signups
    sites = admin_client.get("/admin/sites/site/").content.decode()
    assert "No sites yet. A site is created when a signup is approved" in sites
