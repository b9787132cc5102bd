"""The admin's RBAC Role is least privilege and still covers everything the gateway does.

Every production gateway operation runs against kubesim; each request kubesim logged must be
allowed by deploy/kubernetes/rbac.yaml, and the Role must grant nothing unused.
"""

from pathlib import Path

import yaml

from cluster.gateway import Cluster
from cluster.manifests import ClusterSettings, SiteSpec, secret_manifest, site_manifests

RBAC = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "rbac.yaml"


def role_rules() -> dict[str, set[str]]:
    (role,) = [doc for doc in yaml.safe_load_all(RBAC.read_text()) if doc["kind"] == "Role"]
    allowed: dict[str, set[str]] = {}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        for resource in rule["resources"]:
            allowed.setdefault(resource, set()).update(rule["verbs"])
    return allowed


def test_role_is_namespaced_and_never_reads_secrets():
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(RBAC.read_text())}
    assert "ClusterRole" not in docs and "ClusterRoleBinding" not in docs
    assert docs["Role"]["metadata"]["namespace"] == "subscribie-sites"
    assert role_rules()["secrets"] == {"create", "delete"}


def test_every_gateway_request_is_allowed_and_every_grant_is_used(cluster: Cluster, kubesim):
    config = ClusterSettings(
        namespace=cluster.namespace, base_domain="sites.test", progress_deadline_seconds=60
    )
    spec = SiteSpec(
        slug="rbac-site", title="RBAC", owner_email="o@example.com",
        image="subscribie/subscribie:v1", theme_name="jesmond", theme_colour="#aa3355",
    )  # fmt: skip
    kubesim.reset_requests()
    # What deploy, refresh, rollouts, suspend and delete do in production.
    cluster.ensure_secret(secret_manifest(spec, config, values={"SECRET_KEY": "x"}))
    cluster.ensure_secret(secret_manifest(spec, config, values={"SECRET_KEY": "x"}))  # exists
    cluster.apply_site(site_manifests(spec, config, change_cause="rbac test"))
    cluster.list_sites()
    cluster.list_sites(["rbac-site"])
    cluster.read_site("rbac-site")
    _, listed_at = cluster.list_site_deployments()
    list(cluster.watch_deployments(listed_at, timeout_seconds=1))  # the rollout gate's watch
    cluster.set_image("rbac-site", "subscribie/subscribie:v2", change_cause="t", dry_run=True)
    cluster.set_image("rbac-site", "subscribie/subscribie:v2", change_cause="t")
    cluster.scale_site("rbac-site", 0)
    cluster.delete_site("rbac-site")

    allowed = role_rules()
    used: dict[str, set[str]] = {}
    for verb, resource, namespace, _name in kubesim.requests().counts:
        if namespace != cluster.namespace:
            continue
        base = resource.split("/", 1)[0]
        used.setdefault(base, set()).add(verb)
        assert verb in allowed.get(base, set()), f"{verb} {resource} is not in the Role"
    # Server-side apply creates objects through PATCH; a real API server also checks create.
    for resource in ("deployments", "services", "ingresses"):
        used[resource].add("create")
    assert used == allowed, "the Role grants verbs the gateway never uses"


def test_admin_manifests_run_restricted():
    docs = list(yaml.safe_load_all((RBAC.parent / "admin.yaml").read_text()))
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]
    pods += [
        d["spec"]["jobTemplate"]["spec"]["template"]["spec"] for d in docs if d["kind"] == "CronJob"
    ]
    assert len(pods) == 3
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert "secretRef" in str(container["envFrom"])
