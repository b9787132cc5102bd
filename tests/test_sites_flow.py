"""Signups to live sites, end to end: CouchDB server -> sync -> approve -> deploy job on kubesim
(real gateway, official client, HTTP) -> status refresh -> write-back."""

import io

import pytest
from django.core.management import call_command
from kubernetes import client as k8s

from audit.models import AuditEvent
from sites.leases import lease_acquire, lease_release
from sites.models import Signup, Site
from sites.services import (
    WATCHER_LEASE,
    signups_approve,
    site_delete,
    site_deploy,
    sites_delete_request,
    sites_refresh_status,
    sites_watch_deploying,
)
from sites.sync import signups_sync
from tests.fixtures.couchdb import signup_doc
from tests.fixtures.sites import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def flow_doc(i, **extra):
    theme = {"name": "jesmond", "colour": "#AA3355"}
    return signup_doc(f"flow-{i}", f"Flow Shop {i}", theme=theme, **extra)


@pytest.fixture
def feed(signups_feed, cluster_settings):
    cluster_settings.SITE_DEPLOY_WATCH_SECONDS = 20
    return signups_feed


def watch(cluster):
    return sites_watch_deploying(cluster=cluster, max_seconds=20, poll=0.05)


def approve_all(actor="staff"):
    return signups_approve(signups=Signup.objects.filter(status="pending"), actor=actor)


def test_signup_becomes_a_live_labelled_site_and_the_doc_is_completed(feed, cluster, kubesim):
    feed.bulk_docs([flow_doc(1, custom_domain="shop.example.org", site_name="flow-one")])
    signups_sync(client=feed)
    (site,) = approve_all()
    assert site.status == Site.Status.DEPLOYING and site.image == "subscribie/subscribie:latest"

    assert site_deploy(site_id=site.pk, cluster=cluster)
    watch(cluster)
    site.refresh_from_db()
    assert site.status == Site.Status.LIVE, site.status_message
    assert site.observed_image == site.image and site.ready_replicas == 1

    apps, core = k8s.AppsV1Api(cluster.api_client), k8s.CoreV1Api(cluster.api_client)
    ns = cluster.namespace
    deployment = apps.read_namespaced_deployment("flow-one", ns)
    labels = deployment.metadata.labels
    assert labels["subscribie"] == "site" and labels["subscribie-site"] == "flow-one"
    assert labels["app.kubernetes.io/managed-by"] == "subscribie-admin"
    pod = deployment.spec.template.spec
    assert pod.automount_service_account_token is False and pod.enable_service_links is False
    assert pod.security_context.run_as_non_root is True
    container = pod.containers[0]
    assert container.name == "subscribie"
    assert container.security_context.allow_privilege_escalation is False
    env = {e.name: e.value for e in container.env}
    assert env["SITE_TITLE"] == "Flow Shop 1" and env["SITE_THEME_COLOUR"] == "#aa3355"
    assert deployment.spec.strategy.rolling_update.max_unavailable in (0, "0")
    assert core.read_namespaced_service("flow-one", ns).metadata.labels["subscribie"] == "site"
    secret = core.read_namespaced_secret("flow-one-secrets", ns)
    assert secret.data and "SECRET_KEY" in secret.data
    ingress = k8s.NetworkingV1Api(cluster.api_client).read_namespaced_ingress("flow-one", ns)
    hosts = [rule.host for rule in ingress.spec.rules]
    assert hosts == ["flow-one.sites.test"]  # the custom domain is not verified yet

    # The write-back job (run here directly) marks the CouchDB document completed.
    call_command("sync_signups", stdout=io.StringIO())
    stored = feed.get("flow-1")
    assert stored["queue_state"] == "completed"
    assert stored["site_url"] == "https://flow-one.sites.test" and stored["deployed_at"]
    actions = set(AuditEvent.objects.filter(site=site).values_list("action", flat=True))
    assert {"signup.approve", "site.applied", "site.live"} <= actions


def test_deploy_job_twice_is_one_applys_worth_of_change(feed, cluster, kubesim):
    feed.bulk_docs([flow_doc(2)])
    signups_sync(client=feed)
    (site,) = approve_all()
    site_deploy(site_id=site.pk, cluster=cluster)
    first = cluster.read_deployment(site.slug)
    secret_before = (
        k8s.CoreV1Api(cluster.api_client)
        .read_namespaced_secret(f"{site.slug}-secrets", cluster.namespace)
        .data
    )
    Site.objects.filter(pk=site.pk).update(status=Site.Status.DEPLOYING)  # a redelivered job
    site_deploy(site_id=site.pk, cluster=cluster)
    second = cluster.read_deployment(site.slug)
    assert second["metadata"]["generation"] == first["metadata"]["generation"]
    assert second["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    secret_after = (
        k8s.CoreV1Api(cluster.api_client)
        .read_namespaced_secret(f"{site.slug}-secrets", cluster.namespace)
        .data
    )
    assert secret_after == secret_before  # never rotated by a redeploy
    # A site not in "deploying" (live now) is left alone.
    watch(cluster)
    assert site_deploy(site_id=site.pk, cluster=cluster) is False


def test_throttling_and_500_after_apply_still_deploy_once(feed, cluster, kubesim):
    feed.bulk_docs([flow_doc(3)])
    signups_sync(client=feed)
    (site,) = approve_all()
    kubesim.faults.add("patch", "deployments", site.slug, status=429, retry_after=1, count=1)
    kubesim.faults.add("patch", "services", site.slug, after_write=True, count=1)
    kubesim.reset_requests()
    assert site_deploy(site_id=site.pk, cluster=cluster)
    watch(cluster)
    site.refresh_from_db()
    assert site.status == Site.Status.LIVE
    patches = kubesim.requests().count("patch", "deployments", site.slug)
    assert patches == 2  # the throttled one, then the real one
    assert cluster.read_deployment(site.slug)["metadata"]["generation"] == 1


def test_status_refresh_failed_missing_unmanaged_with_constant_api_calls(
    feed, cluster, kubesim, live_sites, settings
):
    sites = live_sites(12)
    kubesim.reset_requests()
    summary = sites_refresh_status(cluster=cluster)
    assert summary.observed == 12 and not summary.failed
    assert kubesim.requests().count("list", "deployments") == 1
    assert kubesim.requests().count("get", "deployments") == 0

    # A broken image stalls past a short deadline -> failed with the condition's message.
    kubesim.set_fail_images(r":broken$")
    broken = sites[0]
    k8s.AppsV1Api(cluster.api_client).patch_namespaced_deployment(
        broken.slug,
        cluster.namespace,
        {
            "spec": {
                "progressDeadlineSeconds": 1,
                "template": {"spec": {"containers": [{"name": "subscribie", "image": "x:broken"}]}},
            }
        },
    )
    # Someone deletes a site by hand, and someone creates an unmanaged one.
    cluster.delete_site(sites[1].slug)
    manifest = cluster.read_deployment(sites[2].slug)
    manifest["metadata"] = {
        "name": "stray",
        "labels": {**manifest["metadata"]["labels"], "subscribie-site": "stray"},
    }
    manifest.pop("status", None)
    manifest["spec"]["selector"] = {"matchLabels": {"subscribie-site": "stray"}}
    manifest["spec"]["template"]["metadata"]["labels"]["subscribie-site"] = "stray"
    k8s.AppsV1Api(cluster.api_client).create_namespaced_deployment(cluster.namespace, manifest)

    def settled():
        return sites_refresh_status(cluster=cluster).failed or None

    wait_until(settled, timeout=20)
    summary = sites_refresh_status(cluster=cluster)
    statuses = dict(Site.objects.values_list("slug", "status"))
    assert statuses[broken.slug] == Site.Status.FAILED
    assert "exceeded its progress deadline" in Site.objects.get(pk=broken.pk).status_message
    assert statuses[sites[1].slug] == Site.Status.MISSING
    assert summary.unmanaged == ["stray"]
    assert summary.drift == [broken.slug]


def test_delete_removes_objects_and_keeps_the_row(feed, cluster, live_sites):
    (site,) = live_sites(1)
    assert sites_delete_request(sites=[site], actor="staff") == 1
    assert site_delete(site_id=site.pk, cluster=cluster)
    site.refresh_from_db()
    assert site.status == Site.Status.DELETED
    assert cluster.read_deployment(site.slug) is None
    assert AuditEvent.objects.filter(site=site, action="site.deleted").exists()


def test_reconcile_reports_drift_missing_unmanaged_and_never_imported(
    feed, cluster, live_sites, kubesim
):
    sites = live_sites(3)
    feed.bulk_docs([flow_doc(9)])  # in CouchDB, never synced
    k8s.AppsV1Api(cluster.api_client).patch_namespaced_deployment(
        sites[0].slug,
        cluster.namespace,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "subscribie", "image": "hand:v9"}]}}
            }
        },
    )
    cluster.delete_site(sites[1].slug)
    out = io.StringIO()
    call_command("reconcile_sites", "--fix", stdout=out)
    text = out.getvalue()
    assert "signups never imported: 1" in text and "flow-9" in text
    assert f"sites missing in the cluster: 1\n  {sites[1].slug}" in text
    assert f"{sites[0].slug}: subscribie/subscribie:v1 -> hand:v9" in text
    assert "re-applied: 1" in text
    assert Site.objects.get(pk=sites[1].pk).status == Site.Status.DEPLOYING


def test_one_watcher_settles_a_burst_of_deploys_with_one_list_per_poll(feed, cluster, kubesim):
    feed.bulk_docs([flow_doc(i) for i in range(20, 32)])
    signups_sync(client=feed)
    sites = approve_all()
    for site in sites:
        site_deploy(site_id=site.pk, cluster=cluster)
    # Another watcher already holds the lease: this one leaves at once, calling nothing.
    assert lease_acquire(WATCHER_LEASE, owner="other", seconds=30)
    kubesim.reset_requests()
    assert sites_watch_deploying(cluster=cluster, max_seconds=5) == 0
    assert kubesim.requests().total == 0
    lease_release(WATCHER_LEASE, owner="other")

    kubesim.reset_requests()
    assert watch(cluster) == 12
    assert set(Site.objects.values_list("status", flat=True)) == {Site.Status.LIVE}
    requests = kubesim.requests()
    assert requests.count("get") == 0  # never one call per site
    # LISTs, and the one watch whose events say when to look again.
    assert requests.count("list", "deployments") >= 1
    assert requests.total == requests.count("list", "deployments") + requests.count(
        "watch", "deployments"
    )
    assert requests.count("watch", "deployments") <= 2
