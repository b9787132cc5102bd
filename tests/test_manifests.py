"""Unit tests for cluster.manifests: SiteSpec -> Kubernetes object dicts (no Django, no cluster)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cluster import manifests, status
from cluster.manifests import (
    CHANGE_CAUSE_ANNOTATION,
    CONTAINER_NAME,
    FIELD_MANAGER,
    MANAGED_BY,
    SITE_LABEL,
    SITE_NAME_LABEL,
    ClusterSettings,
    SiteSpec,
    deployment_manifest,
    ingress_manifest,
    secret_manifest,
    secret_name,
    service_manifest,
    site_host,
    site_labels,
    site_manifests,
)

SETTINGS = ClusterSettings(
    namespace="subscribie-sites", base_domain="subscribie.example", progress_deadline_seconds=120
)
CAUSE = "alice: rollout 7 -> subscribie/subscribie:v2"
LABELS = {
    "subscribie": "site",
    "subscribie-site": "bobs-bakery",
    "app.kubernetes.io/managed-by": "subscribie-admin",
}


def make_spec(**overrides: Any) -> SiteSpec:
    fields: dict[str, Any] = {
        "slug": "bobs-bakery",
        "title": "Bob's Bakery",
        "owner_email": "owner@example.com",
        "image": "subscribie/subscribie:v1",
        "theme_name": "jesmond",
        "theme_colour": "#aa3355",
    }
    fields.update(overrides)
    return SiteSpec(**fields)


def key_paths(obj: Any, prefix: str = "") -> set[str]:
    """Every key path of a nested structure (list items by index): its shape, not its values."""
    paths: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{prefix}/{key}"
            paths.add(path)
            paths |= key_paths(value, path)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            paths |= key_paths(value, f"{prefix}[{i}]")
    return paths


def leaves(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [leaf for value in obj.values() for leaf in leaves(value)]
    if isinstance(obj, list):
        return [leaf for value in obj for leaf in leaves(value)]
    return [obj]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"]}


# --- constants and helpers -------------------------------------------------------------------


def test_constants() -> None:
    assert CONTAINER_NAME == "subscribie"
    assert FIELD_MANAGER == "subscribie-admin"
    assert SITE_LABEL == "subscribie"
    assert SITE_NAME_LABEL == "subscribie-site"
    assert MANAGED_BY == ("app.kubernetes.io/managed-by", "subscribie-admin")
    assert CHANGE_CAUSE_ANNOTATION == "kubernetes.io/change-cause"


def test_status_module_agrees_on_shared_names() -> None:
    # status.py keeps its own copies to stay dependency-free; pin them together here.
    assert status.CONTAINER_NAME == manifests.CONTAINER_NAME
    assert status.SITE_NAME_LABEL == manifests.SITE_NAME_LABEL
    assert status.FIELD_MANAGER == manifests.FIELD_MANAGER
    assert status.CHANGE_CAUSE_ANNOTATION == manifests.CHANGE_CAUSE_ANNOTATION


def test_helpers() -> None:
    assert site_labels("bobs-bakery") == LABELS
    assert secret_name("bobs-bakery") == "bobs-bakery-secrets"
    assert site_host("bobs-bakery", "subscribie.example") == "bobs-bakery.subscribie.example"


# --- Deployment -------------------------------------------------------------------------------


def test_deployment_metadata_selector_and_strategy() -> None:
    dep = deployment_manifest(make_spec(replicas=2), SETTINGS, change_cause=CAUSE)
    assert dep["apiVersion"] == "apps/v1"
    assert dep["kind"] == "Deployment"
    assert dep["metadata"] == {
        "name": "bobs-bakery",
        "namespace": "subscribie-sites",
        "labels": LABELS,
        "annotations": {"kubernetes.io/change-cause": CAUSE},
    }
    spec = dep["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {"subscribie-site": "bobs-bakery"}}
    assert spec["template"]["metadata"]["labels"] == LABELS
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert spec["progressDeadlineSeconds"] == 120
    assert spec["revisionHistoryLimit"] == 3


def test_selector_matches_template_labels() -> None:
    dep = deployment_manifest(make_spec(), SETTINGS, change_cause=CAUSE)
    selector = dep["spec"]["selector"]["matchLabels"]
    template_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template_labels.items()


def test_deployment_pod_security() -> None:
    dep = deployment_manifest(make_spec(), SETTINGS, change_cause=CAUSE)
    pod = dep["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    # A read-only root needs a writable /tmp, backed by a declared emptyDir volume.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    volume_names = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert "tmp" in volume_names


def test_deployment_container() -> None:
    dep = deployment_manifest(make_spec(), SETTINGS, change_cause=CAUSE)
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "subscribie"
    assert container["image"] == "subscribie/subscribie:v1"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    assert container["envFrom"] == [{"secretRef": {"name": "bobs-bakery-secrets"}}]
    assert env_of(dep) == {
        "SITE_SLUG": "bobs-bakery",
        "SITE_TITLE": "Bob's Bakery",
        "SITE_OWNER_EMAIL": "owner@example.com",
        "SITE_THEME": "jesmond",
        "SITE_THEME_COLOUR": "#aa3355",
        "SITE_URL": "https://bobs-bakery.subscribie.example",
    }


HOSTILE_TITLES = [
    "title\n  image: evil",
    "x\nspec:\n  containers:\n  - name: evil\n    image: evil/evil",
    "$(rm -rf /)",
    "{{ .Values.secret }}",
    '"}, "privileged": true, "x": {"',
    "--- !!python/object/apply:os.system ['id']",
    "\x00\u202e",
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_text_is_only_a_leaf_value(title: str) -> None:
    plain = site_manifests(make_spec(), SETTINGS, change_cause=CAUSE)
    hostile_spec = make_spec(title=title, owner_email=title, theme_name=title, theme_colour=title)
    hostile = site_manifests(hostile_spec, SETTINGS, change_cause=title)
    # Same shape: no key was added, removed or renamed anywhere.
    for plain_obj, hostile_obj in zip(plain, hostile, strict=True):
        assert key_paths(plain_obj) == key_paths(hostile_obj)
    # The text arrives verbatim, and only where it is meant to be.
    env = env_of(hostile[0])
    assert env["SITE_TITLE"] == title
    assert env["SITE_OWNER_EMAIL"] == title
    assert hostile[0]["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] == title
    assert sum(1 for leaf in leaves(hostile) if leaf == title) == 5
    # Never in a name or a label.
    for obj in hostile:
        assert title not in obj["metadata"]["name"]
        assert obj["metadata"]["labels"] == LABELS


def test_manifests_are_json_serialisable_without_yaml() -> None:
    objs = site_manifests(make_spec(title="a\nb: c"), SETTINGS, change_cause=CAUSE)
    assert json.loads(json.dumps(objs)) == objs


# --- Service and Ingress ----------------------------------------------------------------------


def test_service() -> None:
    svc = service_manifest(make_spec(), SETTINGS)
    assert svc == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bobs-bakery", "namespace": "subscribie-sites", "labels": LABELS},
        "spec": {
            "type": "ClusterIP",
            "selector": {"subscribie-site": "bobs-bakery"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _rule(host: str) -> dict[str, Any]:
    backend = {"service": {"name": "bobs-bakery", "port": {"number": 80}}}
    return {
        "host": host,
        "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
    }


def test_ingress_without_custom_domain() -> None:
    ing = ingress_manifest(make_spec(), SETTINGS)
    assert ing["apiVersion"] == "networking.k8s.io/v1"
    assert ing["kind"] == "Ingress"
    assert ing["metadata"] == {
        "name": "bobs-bakery",
        "namespace": "subscribie-sites",
        "labels": LABELS,
    }
    assert ing["spec"] == {
        "tls": [{"hosts": ["bobs-bakery.subscribie.example"], "secretName": "bobs-bakery-tls"}],
        "rules": [_rule("bobs-bakery.subscribie.example")],
    }


def test_ingress_with_verified_custom_domain() -> None:
    ing = ingress_manifest(make_spec(custom_domain="shop.bobsbakery.com"), SETTINGS)
    hosts = ["bobs-bakery.subscribie.example", "shop.bobsbakery.com"]
    assert ing["spec"]["tls"] == [{"hosts": hosts, "secretName": "bobs-bakery-tls"}]
    assert ing["spec"]["rules"] == [_rule(host) for host in hosts]


def test_custom_domain_only_in_ingress() -> None:
    domain_spec = make_spec(custom_domain="shop.example.com")
    with_domain = site_manifests(domain_spec, SETTINGS, change_cause=CAUSE)
    without = site_manifests(make_spec(), SETTINGS, change_cause=CAUSE)
    assert with_domain[0] == without[0]  # Deployment unchanged
    assert with_domain[1] == without[1]  # Service unchanged
    assert "shop.example.com" not in json.dumps(without)


# --- Secret and the apply set ------------------------------------------------------------------


def test_secret() -> None:
    secret = secret_manifest(
        make_spec(), SETTINGS, values={"SECRET_KEY": "s3cr3t", "API_TOKEN": "t0k3n"}
    )
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "bobs-bakery-secrets",
            "namespace": "subscribie-sites",
            "labels": LABELS,
        },
        "type": "Opaque",
        "stringData": {"API_TOKEN": "t0k3n", "SECRET_KEY": "s3cr3t"},
    }
    assert list(secret["stringData"]) == ["API_TOKEN", "SECRET_KEY"]


@pytest.mark.parametrize("key", ["", "1ABC", "A-B", "A B", "A\nB", "A=B"])
def test_secret_refuses_keys_that_are_not_env_names(key: str) -> None:
    with pytest.raises(ValueError):
        secret_manifest(make_spec(), SETTINGS, values={key: "x"})


def test_site_manifests_are_deployment_service_ingress_without_secret() -> None:
    objs = site_manifests(make_spec(), SETTINGS, change_cause=CAUSE)
    assert [obj["kind"] for obj in objs] == ["Deployment", "Service", "Ingress"]
    for obj in objs:
        assert obj["metadata"]["name"] == "bobs-bakery"
        assert obj["metadata"]["namespace"] == "subscribie-sites"
        assert obj["metadata"]["labels"] == LABELS
    assert "Secret" not in {obj["kind"] for obj in objs}


def test_output_is_deterministic_and_unshared() -> None:
    spec = make_spec(custom_domain="shop.example.com")
    first = site_manifests(spec, SETTINGS, change_cause=CAUSE)
    second = site_manifests(spec, SETTINGS, change_cause=CAUSE)
    assert first == second
    assert json.dumps(first) == json.dumps(second)  # same key order too
    snapshot = copy.deepcopy(second)
    first[0]["metadata"]["labels"]["subscribie"] = "mutated"
    first[0]["spec"]["template"]["spec"]["containers"][0]["env"].clear()
    assert second == snapshot
    assert site_manifests(spec, SETTINGS, change_cause=CAUSE) == snapshot


def test_scaled_to_zero_is_allowed() -> None:
    dep = deployment_manifest(make_spec(replicas=0), SETTINGS, change_cause=CAUSE)
    assert dep["spec"]["replicas"] == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"slug": "Bobs"},
        {"slug": "1bobs"},
        {"slug": "bobs-"},
        {"slug": "bobs\n"},
        {"slug": "a" * 64},
        {"slug": ""},
        {"replicas": -1},
        {"replicas": True},
        {"replicas": 1.5},
        {"image": ""},
        {"image": "subscribie/subscribie:v1 --privileged"},
    ],
)
def test_site_spec_refuses_structural_nonsense(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_spec(**overrides)


def test_cluster_settings_validation() -> None:
    with pytest.raises(ValueError):
        ClusterSettings(namespace="n", base_domain="d.example", progress_deadline_seconds=0)
    with pytest.raises(ValueError):
        ClusterSettings(
            namespace="n",
            base_domain="d.example",
            progress_deadline_seconds=60,
            revision_history_limit=-1,
        )
