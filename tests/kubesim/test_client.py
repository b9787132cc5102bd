"""The official Python client against kubesim: typed CRUD, patches, errors, lists, watch, SSA.

Contract mode: every test here runs on kubesim and, with ``KUBESIM_CONTRACT_KUBECONFIG`` set
(``make test-real``), again on that real cluster in a throwaway namespace (``kube_target``);
a test that reaches into kubesim's own store stays on kubesim.
"""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException

from tests.fixtures.any_cluster import KubeTarget

from . import on_target
from .support import site_deployment, wait_for, wait_rolled_out

pytestmark = pytest.mark.contract
# The official client on kube_target (kubesim, or the real control plane in make test-real).
kube_namespace = on_target.kube_namespace
kube_api_client = on_target.kube_api_client


def test_discovery_and_version(kube_api_client: client.ApiClient) -> None:
    version = client.VersionApi(kube_api_client).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    groups = {g.name for g in client.ApisApi(kube_api_client).get_api_versions().groups}
    assert {"apps", "networking.k8s.io"} <= groups
    resources = {r.name for r in client.AppsV1Api(kube_api_client).get_api_resources().resources}
    assert {"deployments", "deployments/status", "deployments/scale", "replicasets"} <= resources


def test_typed_crud_metadata_semantics(apps: client.AppsV1Api, kube_namespace: str) -> None:
    created = apps.create_namespaced_deployment(kube_namespace, site_deployment("alpha"))
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp and meta.generation == 1
    assert int(meta.resource_version) > 0
    assert meta.managed_fields and meta.managed_fields[0].operation == "Update"
    assert (
        created.spec.progress_deadline_seconds == 600 and created.spec.revision_history_limit == 10
    )
    # A label change is not a spec change: generation stays, resourceVersion moves on.
    labelled = apps.patch_namespaced_deployment(
        "alpha", kube_namespace, {"metadata": {"labels": {"tier": "gold"}}}
    )
    assert labelled.metadata.generation == 1
    assert int(labelled.metadata.resource_version) > int(meta.resource_version)
    # A spec change bumps generation.
    scaled = apps.patch_namespaced_deployment("alpha", kube_namespace, {"spec": {"replicas": 2}})
    assert scaled.metadata.generation == 2
    assert (
        scaled.metadata.uid == meta.uid
        and scaled.metadata.creation_timestamp == meta.creation_timestamp
    )
    # Status cannot be written through the main resource. (Read once the controller is done
    # with the scale-up: a status write between the read and the replace would be a 409.)
    wait_rolled_out(apps, kube_namespace, "alpha")
    body = apps.read_namespaced_deployment("alpha", kube_namespace).to_dict()
    replaced = apps.replace_namespaced_deployment(
        "alpha",
        kube_namespace,
        {
            **site_deployment("alpha"),
            "metadata": {"name": "alpha", "resourceVersion": body["metadata"]["resource_version"]},
            "status": {"replicas": 99},
        },
    )
    assert (replaced.status.replicas or 0) != 99
    apps.delete_namespaced_deployment("alpha", kube_namespace)
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("alpha", kube_namespace)
    assert err.value.status == 404
    status = json.loads(err.value.body)
    assert status["kind"] == "Status" and status["reason"] == "NotFound"
    assert status["details"] == {"name": "alpha", "group": "apps", "kind": "deployments"}


def test_error_codes(apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("beta"))
    with pytest.raises(ApiException) as exists:
        apps.create_namespaced_deployment(kube_namespace, site_deployment("beta"))
    assert exists.value.status == 409 and json.loads(exists.value.body)["reason"] == "AlreadyExists"

    with pytest.raises(ApiException) as no_ns:
        apps.create_namespaced_deployment("no-such-namespace", site_deployment("beta"))
    assert no_ns.value.status == 404

    bad = site_deployment("gamma")
    bad["spec"]["selector"] = {"matchLabels": {"subscribie-site": "other"}}
    with pytest.raises(ApiException) as invalid:
        apps.create_namespaced_deployment(kube_namespace, bad)
    body = json.loads(invalid.value.body)
    assert invalid.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"

    with pytest.raises(ApiException) as bad_name:
        core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "Not_Valid"}})
    assert bad_name.value.status == 422
    with pytest.raises(ApiException) as bad_label:
        core.create_namespaced_config_map(
            kube_namespace, {"metadata": {"name": "ok", "labels": {"a": "no spaces"}}}
        )
    assert bad_label.value.status == 422

    current = apps.read_namespaced_deployment("beta", kube_namespace)
    stale = current.metadata.resource_version
    apps.patch_namespaced_deployment("beta", kube_namespace, {"metadata": {"labels": {"x": "1"}}})
    body = site_deployment("beta")
    body["metadata"]["resourceVersion"] = stale
    with pytest.raises(ApiException) as conflict:
        apps.replace_namespaced_deployment("beta", kube_namespace, body)
    assert conflict.value.status == 409 and json.loads(conflict.value.body)["reason"] == "Conflict"


def test_generate_name_dry_run_and_core_types(
    core: client.CoreV1Api, kube_api_client: client.ApiClient, kube_namespace: str
) -> None:
    cm = core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"generateName": "cfg-"}, "data": {"k": "v"}}
    )
    assert cm.metadata.name.startswith("cfg-") and len(cm.metadata.name) > 4
    secret = core.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "s"}, "stringData": {"a": "b"}}, dry_run="All"
    )
    assert secret.metadata.name == "s"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_secret("s", kube_namespace)
    assert err.value.status == 404
    svc = core.create_namespaced_service(
        kube_namespace,
        {"metadata": {"name": "web"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}},
    )
    assert svc.spec.cluster_ip and svc.spec.ports[0].target_port == 80
    net = client.NetworkingV1Api(kube_api_client)
    ing = net.create_namespaced_ingress(
        kube_namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "rules": [
                    {
                        "host": "a.example.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ]
            },
        },
    )
    assert ing.spec.rules[0].host == "a.example.com"
    assert [i.metadata.name for i in net.list_namespaced_ingress(kube_namespace).items] == ["web"]
    core.delete_namespaced_config_map(cm.metadata.name, kube_namespace, dry_run="All")
    assert core.read_namespaced_config_map(cm.metadata.name, kube_namespace)


def test_each_patch_type(
    apps: client.AppsV1Api, kube_api_client: client.ApiClient, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("delta"))
    # The client sends strategic merge for a dict body: the container list merges by name.
    d = apps.patch_namespaced_deployment(
        "delta",
        kube_namespace,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "subscribie", "image": "img:2"}]}}
            }
        },
    )
    c = d.spec.template.spec.containers
    assert len(c) == 1 and c[0].image == "img:2" and c[0].readiness_probe is not None
    # JSON merge patch and JSON patch (what kubectl rollout undo sends), via the dynamic client.
    res = dynamic.DynamicClient(kube_api_client).resources.get(
        api_version="apps/v1", kind="Deployment"
    )
    res.patch(
        name="delta",
        namespace=kube_namespace,
        body={"metadata": {"annotations": {"a": "1"}}},
        content_type="application/merge-patch+json",
    )
    res.patch(
        name="delta",
        namespace=kube_namespace,
        body=[{"op": "replace", "path": "/spec/replicas", "value": 3}],
        content_type="application/json-patch+json",
    )
    d = apps.read_namespaced_deployment("delta", kube_namespace)
    assert d.metadata.annotations["a"] == "1" and d.spec.replicas == 3
    # Status subresource only writes status.
    st = apps.patch_namespaced_deployment_status(
        "delta", kube_namespace, {"status": {"collisionCount": 7}, "spec": {"replicas": 9}}
    )
    assert st.status.collision_count == 7 and st.spec.replicas == 3
    # Scale subresource.
    scale = apps.patch_namespaced_deployment_scale(
        "delta", kube_namespace, {"spec": {"replicas": 2}}
    )
    assert scale.spec.replicas == 2
    assert apps.read_namespaced_deployment_scale("delta", kube_namespace).spec.replicas == 2
    assert apps.read_namespaced_deployment("delta", kube_namespace).spec.replicas == 2


def test_server_side_apply_with_dynamic_client(
    kube_api_client: client.ApiClient, kube_namespace: str
) -> None:
    dyn = dynamic.DynamicClient(kube_api_client)
    res = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    body = site_deployment("eps")
    body["metadata"]["namespace"] = kube_namespace
    out = res.server_side_apply(
        body=body, name="eps", namespace=kube_namespace, field_manager="fleet"
    )
    assert out.metadata.managedFields[0].manager == "fleet"
    assert out.metadata.managedFields[0].operation == "Apply"
    body["spec"]["replicas"] = 3
    other = json.loads(json.dumps(body))
    other["spec"]["replicas"] = 5
    res.server_side_apply(body=body, name="eps", namespace=kube_namespace, field_manager="fleet")
    with pytest.raises(ApiException) as err:
        res.server_side_apply(
            body=other, name="eps", namespace=kube_namespace, field_manager="intruder"
        )
    assert err.value.status == 409
    assert 'conflict with "fleet"' in json.loads(err.value.body)["message"]
    forced = res.server_side_apply(
        body=other,
        name="eps",
        namespace=kube_namespace,
        field_manager="intruder",
        force_conflicts=True,
    )
    assert forced.spec.replicas == 5


def test_list_selectors_pagination_and_all_namespaces(
    apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str
) -> None:
    for slug in ("s1", "s2", "s3", "s4", "s5"):
        apps.create_namespaced_deployment(kube_namespace, site_deployment(slug))
    other = site_deployment("other")
    other["metadata"]["labels"] = {"subscribie": "admin"}
    apps.create_namespaced_deployment(kube_namespace, other)
    names = lambda items: [i.metadata.name for i in items]  # noqa: E731
    assert names(
        apps.list_namespaced_deployment(kube_namespace, label_selector="subscribie=site").items
    ) == ["s1", "s2", "s3", "s4", "s5"]
    assert names(
        apps.list_namespaced_deployment(
            kube_namespace, label_selector="subscribie-site in (s2,s4)"
        ).items
    ) == ["s2", "s4"]
    assert names(
        apps.list_namespaced_deployment(
            kube_namespace, label_selector="subscribie=site,subscribie-site notin (s1,s2,s3)"
        ).items
    ) == ["s4", "s5"]
    assert names(
        apps.list_namespaced_deployment(kube_namespace, label_selector="!subscribie-site").items
    ) == ["other"]
    assert names(
        apps.list_namespaced_deployment(kube_namespace, field_selector="metadata.name=s3").items
    ) == ["s3"]
    page = apps.list_namespaced_deployment(kube_namespace, limit=2)
    seen = names(page.items)
    while page.metadata._continue:
        page = apps.list_namespaced_deployment(
            kube_namespace, limit=2, _continue=page.metadata._continue
        )
        seen += names(page.items)
    assert seen == ["other", "s1", "s2", "s3", "s4", "s5"]
    everywhere = apps.list_deployment_for_all_namespaces(
        field_selector=f"metadata.namespace={kube_namespace}", label_selector="subscribie=site"
    )
    assert len(everywhere.items) == 5
    core.delete_collection_namespaced_config_map(kube_namespace)  # empty collection is fine
    apps.delete_collection_namespaced_deployment(
        kube_namespace, label_selector="subscribie-site in (s1,s2)"
    )
    assert names(
        apps.list_namespaced_deployment(kube_namespace, label_selector="subscribie=site").items
    ) == ["s3", "s4", "s5"]


def test_later_pages_of_a_list_come_from_the_first_pages_snapshot(
    core: client.CoreV1Api, kube_namespace: str
) -> None:
    """etcd serves a continue token at the first page's resourceVersion: what changed after
    the first page reads as it was, what was created since is not there, what was deleted
    since still is, and every page names the same resourceVersion."""
    for i in range(1, 6):
        body = {"metadata": {"name": f"cm-{i}"}, "data": {"v": "before"}}
        core.create_namespaced_config_map(kube_namespace, body)
    first = core.list_namespaced_config_map(kube_namespace, limit=2)
    assert [c.metadata.name for c in first.items] == ["cm-1", "cm-2"]
    before = core.read_namespaced_config_map("cm-4", kube_namespace)
    core.patch_namespaced_config_map("cm-4", kube_namespace, {"data": {"v": "after"}})
    core.delete_namespaced_config_map("cm-5", kube_namespace)
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "cm-3a"}})

    page, later = first, []
    while page.metadata._continue:
        page = core.list_namespaced_config_map(
            kube_namespace, limit=2, _continue=page.metadata._continue
        )
        assert page.metadata.resource_version == first.metadata.resource_version
        later += page.items
    by_name = {c.metadata.name: c for c in later}
    assert [n for n in by_name if n.startswith("cm-")] == ["cm-3", "cm-4", "cm-5"]
    assert by_name["cm-4"].data == {"v": "before"}
    assert by_name["cm-4"].metadata.resource_version == before.metadata.resource_version
    fresh = core.list_namespaced_config_map(kube_namespace)
    assert {c.metadata.name for c in fresh.items} >= {"cm-3a", "cm-4"}
    assert "cm-5" not in {c.metadata.name for c in fresh.items}


def test_delete_cascades_through_owner_references(
    apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("zeta", replicas=2))
    wait_for(lambda: len(core.list_namespaced_pod(kube_namespace).items) == 2, what="pods")
    apps.delete_namespaced_deployment("zeta", kube_namespace, propagation_policy="Foreground")
    # A real garbage collector removes dependents after the DELETE returns (kubesim at once).
    wait_for(
        lambda: (
            not apps.list_namespaced_replica_set(kube_namespace).items
            and not core.list_namespaced_pod(kube_namespace).items
        ),
        what="dependents gone",
    )
    apps.create_namespaced_deployment(kube_namespace, site_deployment("eta", replicas=1))
    wait_for(lambda: len(core.list_namespaced_pod(kube_namespace).items) == 1, what="pods")
    apps.delete_namespaced_deployment("eta", kube_namespace, propagation_policy="Orphan")
    orphaned = wait_for(
        lambda: [
            rs
            for rs in apps.list_namespaced_replica_set(kube_namespace).items
            if not rs.metadata.owner_references
        ],
        what="the ReplicaSet orphaned",
    )
    assert len(apps.list_namespaced_replica_set(kube_namespace).items) == len(orphaned) == 1
    wait_for(lambda: not apps.list_namespaced_deployment(kube_namespace).items, what="deleted")


def test_watch_stream_events_and_resume(
    apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str
) -> None:
    start = core.list_namespaced_config_map(kube_namespace).metadata.resource_version
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "w1", "labels": {"w": "yes"}}}
    )
    core.patch_namespaced_config_map("w1", kube_namespace, {"data": {"a": "b"}})
    core.delete_namespaced_config_map("w1", kube_namespace)
    w = watch.Watch()
    events = []
    for ev in w.stream(
        core.list_namespaced_config_map,
        kube_namespace,
        resource_version=start,
        timeout_seconds=1,
        label_selector="w=yes",
    ):
        events.append((ev["type"], ev["object"].metadata.name))
        if len(events) == 3:
            w.stop()
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]

    received: list[str] = []

    def consume() -> None:
        w2 = watch.Watch()
        for ev in w2.stream(apps.list_namespaced_deployment, kube_namespace, timeout_seconds=5):
            received.append(ev["type"])
            if ev["type"] == "ADDED":
                w2.stop()

    t = threading.Thread(target=consume)
    t.start()
    wait_for(lambda: True)
    import time

    time.sleep(0.3)
    apps.create_namespaced_deployment(kube_namespace, site_deployment("watched"))
    t.join(timeout=5)
    assert received[:1] == ["ADDED"]


def test_watch_too_old_resource_version_is_410(
    kube_target: KubeTarget, kube_api_client: client.ApiClient, kube_namespace: str
) -> None:
    if kube_target.sim is None:
        pytest.skip("compacting history needs kubesim's store; etcd compacts on its own clock")
    store = kube_target.sim.store
    saved = store._compacted_rv
    store._compacted_rv = store.resource_version
    try:
        with pytest.raises(ApiException) as err:
            resp = client.CoreV1Api(kube_api_client).list_namespaced_config_map(
                kube_namespace, watch=True, resource_version="1", _preload_content=False
            )
            resp.read()
        assert err.value.status == 410
    finally:
        store._compacted_rv = saved


def test_a_continue_token_older_than_the_history_is_410_expired(
    kube_target: KubeTarget, core: client.CoreV1Api, kube_namespace: str
) -> None:
    if kube_target.sim is None:
        pytest.skip("compacting history needs kubesim's store; etcd compacts on its own clock")
    for i in range(3):
        core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": f"cm-{i}"}})
    first = core.list_namespaced_config_map(kube_namespace, limit=1)
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "cm-later"}})
    store = kube_target.sim.store  # compacted past the first page's resourceVersion:
    saved = store._compacted_rv
    store._compacted_rv = store.resource_version
    try:
        with pytest.raises(ApiException) as err:
            core.list_namespaced_config_map(
                kube_namespace, limit=1, _continue=first.metadata._continue
            )
        assert err.value.status == 410
        body = json.loads(err.value.body)
        assert body["reason"] == "Expired"
        assert body["message"].startswith("The provided continue parameter is too old")
    finally:
        store._compacted_rv = saved
