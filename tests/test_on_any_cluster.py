"""The product's promises, end to end, on kubesim and on a real Kubernetes control plane.

Every test runs twice (``kube_target``: kubesim, then the real control plane when
``KUBESIM_CONTRACT_KUBECONFIG`` is set, as ``make test-real`` does): signup to live site, a
50-site gated upgrade with every site available throughout, a broken image halting at the
canary and reverting, rollback of a rollout to the exact images, a site changed by hand with
``kubectl set image`` seen as drift, and the admin's least-privilege Role enforced by the real
authorizer. Only the kubeconfig differs; the assertions are the same on both.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command
from kubernetes import client as k8s

from audit.models import AuditEvent
from cluster.gateway import Cluster, ClusterError
from cluster.manifests import ClusterSettings, SiteSpec, secret_manifest, site_manifests
from rollouts import engine, services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Signup, Site
from sites.services import signups_approve, site_deploy, sites_refresh_status, sites_watch_deploying
from sites.sync import signups_sync
from tests.fixtures.any_cluster import KubeTarget
from tests.fixtures.couchdb import signup_doc
from tests.fixtures.identities import admin_role_docs, token_kubeconfig
from tests.fixtures.rollouts import start_approved
from tests.fixtures.sites import wait_until

V1 = "subscribie/subscribie:v1"
V2 = "subscribie/subscribie:v2"
KUBECTL = str(Path(sys.executable).with_name("kubectl"))

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


@pytest.fixture
def cluster_settings(settings, kube_target: KubeTarget):
    """The Django settings pointed at this test's cluster and namespace (overrides sites.py's)."""
    settings.KUBECONFIG = kube_target.kubeconfig
    settings.KUBE_IN_CLUSTER = False
    settings.SITES_NAMESPACE = kube_target.namespace
    settings.SITES_BASE_DOMAIN = "sites.test"
    settings.KUBE_QPS = 0
    settings.SITE_PROGRESS_DEADLINE_SECONDS = 600
    return settings


def kubectl(target: KubeTarget, *args: str) -> str:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", target.kubeconfig, "-n", target.namespace, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def start_upgrade(sites, image=V2, **kwargs) -> Rollout:
    kwargs.setdefault("waves", "1,10%,50%,100%")
    kwargs.setdefault("wave_timeout", 120)
    rollout = services.rollout_create(sites=sites, image=image, actor="tester", **kwargs)
    start_approved(rollout)  # a whole-fleet upgrade needs a second staff member's approval
    return rollout


def run(rollout: Rollout, cluster: Cluster) -> Rollout:
    return engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.1).rollout


def running_images(cluster: Cluster) -> dict[str, str]:
    return {slug: snap.image for slug, snap in cluster.list_sites().items()}


def test_signup_becomes_a_live_site_and_the_doc_is_completed(
    signups_feed, cluster_settings, cluster
):
    cluster_settings.SITE_DEPLOY_WATCH_SECONDS = 60
    theme = {"name": "jesmond", "colour": "#AA3355"}
    signups_feed.bulk_docs([signup_doc("e2e-1", "E2E Shop", theme=theme, site_name="e2e-shop")])
    signups_sync(client=signups_feed)
    (site,) = signups_approve(signups=Signup.objects.filter(status="pending"), actor="staff")

    assert site_deploy(site_id=site.pk, cluster=cluster)
    sites_watch_deploying(cluster=cluster, max_seconds=60, poll=0.1)
    site.refresh_from_db()
    assert site.status == Site.Status.LIVE, site.status_message
    assert site.observed_image == site.image and site.ready_replicas == 1

    apps, core = k8s.AppsV1Api(cluster.api_client), k8s.CoreV1Api(cluster.api_client)
    deployment = apps.read_namespaced_deployment("e2e-shop", cluster.namespace)
    assert deployment.metadata.labels["subscribie"] == "site"
    assert deployment.spec.template.spec.containers[0].name == "subscribie"
    assert deployment.status.available_replicas == 1
    assert core.read_namespaced_secret("e2e-shop-secrets", cluster.namespace).data
    ingress = k8s.NetworkingV1Api(cluster.api_client).read_namespaced_ingress(
        "e2e-shop", cluster.namespace
    )
    assert [rule.host for rule in ingress.spec.rules] == ["e2e-shop.sites.test"]

    call_command("sync_signups", stdout=io.StringIO())
    stored = signups_feed.get("e2e-1")
    assert stored["queue_state"] == "completed"
    assert stored["site_url"] == "https://e2e-shop.sites.test"


def test_50_site_gated_upgrade_keeps_every_site_available(live_sites, cluster, kube_target):
    live_sites(50, canary=1)
    kube_target.watch_availability(cluster.api_client)
    kube_target.mark_requests()

    rollout = run(start_upgrade(Site.objects.all(), whole_fleet=True), cluster)

    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message
    assert Counter(rollout.targets.values_list("wave", flat=True)) == {0: 1, 1: 4, 2: 20, 3: 25}
    assert set(running_images(cluster).values()) == {V2}
    assert len(running_images(cluster)) == 50
    availability = kube_target.availability()
    assert len(availability) == 50 and min(availability.values()) >= 1, availability
    patches = kube_target.image_patches()
    if patches is not None:
        assert patches == {f"site-{i:04d}": 1 for i in range(50)}
    assert set(Site.objects.values_list("image", flat=True)) == {V2}


def test_broken_image_halts_at_the_canary_and_reverts_it(
    settings, live_sites, cluster, kube_target
):
    settings.SITE_PROGRESS_DEADLINE_SECONDS = 5
    live_sites(12, canary=1)
    kube_target.watch_availability(cluster.api_client)
    kube_target.mark_requests()

    rollout = run(start_upgrade(Site.objects.all(), image=kube_target.broken_image), cluster)

    assert rollout.status == Rollout.Status.REVERTED, rollout.status_message
    assert "failure budget exceeded" in rollout.status_message
    canary = rollout.targets.get(wave=0)
    assert canary.status == RolloutTarget.Status.REVERTED and canary.from_image == V1
    statuses = Counter(rollout.targets.values_list("status", flat=True))
    assert statuses == {"reverted": 1, "skipped": 11}
    assert set(running_images(cluster).values()) == {V1}
    wait_until(lambda: cluster.read_site("site-0000").state.done, timeout=60)
    assert min(kube_target.availability().values()) >= 1
    patches = kube_target.image_patches()
    if patches is not None:
        assert patches == {"site-0000": 2}  # the broken image, then the revert
    failed = AuditEvent.objects.get(rollout=rollout, action="target.failed")
    assert "progress deadline" in failed.message


def test_rollback_of_a_rollout_restores_each_sites_exact_image(live_sites, cluster, kube_target):
    live_sites(3)
    hotfix = "subscribie/subscribie:hotfix"
    kubectl(kube_target, "set", "image", "deployment/site-0001", f"subscribie={hotfix}")
    wait_until(lambda: cluster.read_site("site-0001").state.done, timeout=60)

    upgrade = run(start_upgrade(Site.objects.all(), waves="100%"), cluster)
    assert upgrade.status == Rollout.Status.SUCCEEDED
    assert set(running_images(cluster).values()) == {V2}

    kube_target.mark_requests()
    rollback = run(services.rollout_rollback(rollout=upgrade, actor="t", enqueue=False), cluster)
    assert rollback.status == Rollout.Status.SUCCEEDED, rollback.status_message
    assert running_images(cluster) == {"site-0000": V1, "site-0001": hotfix, "site-0002": V1}
    patches = kube_target.image_patches()
    if patches is not None:
        assert patches == {f"site-000{i}": 1 for i in range(3)}
    # kubectl's own view of the history agrees: the rollback is a new revision, not an undo.
    history = kubectl(kube_target, "rollout", "history", "deployment/site-0001")
    assert "REVISION" in history and len(history.strip().splitlines()) >= 4


def test_a_site_changed_by_hand_is_reported_as_drift(
    signups_feed, live_sites, cluster, kube_target
):
    sites = live_sites(2)
    kubectl(kube_target, "set", "image", "deployment/site-0000", "subscribie=hand:v9")
    wait_until(lambda: cluster.read_site("site-0000").state.done, timeout=60)

    sites_refresh_status(cluster=cluster)
    drifted, steady = (Site.objects.get(pk=s.pk) for s in sites)
    assert drifted.image_drift and drifted.observed_image == "hand:v9"
    assert not steady.image_drift
    out = io.StringIO()
    call_command("reconcile_sites", stdout=out)
    assert f"site-0000: {V1} -> hand:v9" in out.getvalue()


# --- the admin's Role, enforced ------------------------------------------------------------


def bind_admin_role(api_client, namespace: str) -> str:
    """deploy/kubernetes/rbac.yaml's Role, bound to a new ServiceAccount; returns its token."""
    account, role, binding = admin_role_docs(namespace, "fleet-admin")
    core, rbac = k8s.CoreV1Api(api_client), k8s.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, account)
    rbac.create_namespaced_role(namespace, role)
    rbac.create_namespaced_role_binding(namespace, binding)
    request = {"spec": {"audiences": [], "expirationSeconds": 3600}}
    token = core.create_namespaced_service_account_token("fleet-admin", namespace, request)
    return token.status.token


def test_the_admins_role_allows_every_gateway_operation_and_refuses_reading_secrets(
    kube_target, cluster, tmp_path
):
    token = bind_admin_role(cluster.api_client, kube_target.namespace)
    admin_kubeconfig = token_kubeconfig(kube_target.kubeconfig, token, tmp_path / "sa-kubeconfig")
    as_admin = Cluster.connect(namespace=kube_target.namespace, kubeconfig=admin_kubeconfig, qps=0)
    config = ClusterSettings(
        namespace=kube_target.namespace, base_domain="sites.test", progress_deadline_seconds=60
    )
    spec = SiteSpec(
        slug="rbac-site", title="RBAC", owner_email="o@example.com",
        image=V1, theme_name="jesmond", theme_colour="#aa3355",
    )  # fmt: skip
    # What deploy, refresh, rollouts, suspend and delete do in production, as the admin.
    assert as_admin.ensure_secret(secret_manifest(spec, config, values={"SECRET_KEY": "x"}))
    assert not as_admin.ensure_secret(secret_manifest(spec, config, values={"SECRET_KEY": "x"}))
    as_admin.apply_site(site_manifests(spec, config, change_cause="rbac test"))
    assert set(as_admin.list_sites()) == {"rbac-site"}
    assert set(as_admin.list_sites(["rbac-site"])) == {"rbac-site"}
    assert as_admin.read_site("rbac-site") is not None
    listed, listed_at = as_admin.list_site_deployments()
    assert [d["metadata"]["name"] for d in listed] == ["rbac-site"]
    list(as_admin.watch_deployments(listed_at, timeout_seconds=1))  # the rollout gate's watch
    as_admin.set_image("rbac-site", V2, change_cause="t", dry_run=True)
    as_admin.set_image("rbac-site", V2, change_cause="t")
    as_admin.scale_site("rbac-site", 0)

    core = k8s.CoreV1Api(as_admin.api_client)
    with pytest.raises(k8s.ApiException) as refused:
        core.read_namespaced_secret("rbac-site-secrets", kube_target.namespace)
    assert refused.value.status == 403
    refusal = json.loads(refused.value.body)
    assert refusal["reason"] == "Forbidden"
    assert 'cannot get resource "secrets"' in refusal["message"]
    with pytest.raises(k8s.ApiException) as listing:
        core.list_namespaced_secret(kube_target.namespace)
    assert listing.value.status == 403
    # The Role is namespaced: the same identity reads no sites anywhere else.
    with pytest.raises(ClusterError) as elsewhere:
        Cluster.connect(namespace="default", kubeconfig=admin_kubeconfig, qps=0).list_sites()
    assert elsewhere.value.status == 403
    # The Secret the admin created holds what it wrote, as only the cluster admin can see.
    stored = k8s.CoreV1Api(cluster.api_client).read_namespaced_secret(
        "rbac-site-secrets", kube_target.namespace
    )
    assert base64.b64decode(stored.data["SECRET_KEY"]) == b"x"

    as_admin.delete_site("rbac-site")
    assert cluster.read_deployment("rbac-site") is None
