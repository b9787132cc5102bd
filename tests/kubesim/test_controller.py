"""The Deployment controller: ReplicaSets, revisions, rolling updates, readiness, deadlines."""

from __future__ import annotations

import time

from kubernetes import client

from kubesim import KubeSim

from .support import rolled_out, site_deployment, wait_for, wait_rolled_out

REVISION = "deployment.kubernetes.io/revision"


def set_image(
    apps: client.AppsV1Api, ns: str, name: str, image: str, cause: str | None = None
) -> None:
    body: dict = {
        "spec": {"template": {"spec": {"containers": [{"name": "subscribie", "image": image}]}}}
    }
    if cause:
        body["metadata"] = {"annotations": {"kubernetes.io/change-cause": cause}}
    apps.patch_namespaced_deployment(name, ns, body)


def test_creates_replicaset_and_ready_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("web", replicas=3))
    d = wait_rolled_out(apps, kube_namespace, "web")
    rs = apps.list_namespaced_replica_set(kube_namespace).items
    assert len(rs) == 1
    rs_hash = rs[0].metadata.labels["pod-template-hash"]
    assert rs[0].metadata.name == f"web-{rs_hash}"
    assert (
        rs[0].metadata.owner_references[0].kind == "Deployment"
        and rs[0].metadata.owner_references[0].controller
    )
    assert rs[0].metadata.annotations[REVISION] == "1" and d.metadata.annotations[REVISION] == "1"
    pods = core.list_namespaced_pod(
        kube_namespace, label_selector=f"pod-template-hash={rs_hash}"
    ).items
    assert len(pods) == 3 and all(p.status.phase == "Running" for p in pods)
    assert all(
        next(c for c in p.status.conditions if c.type == "Ready").status == "True" for p in pods
    )
    conds = {c.type: (c.status, c.reason) for c in d.status.conditions}
    assert conds == {
        "Available": ("True", "MinimumReplicasAvailable"),
        "Progressing": ("True", "NewReplicaSetAvailable"),
    }
    assert d.status.observed_generation == d.metadata.generation
    assert (d.status.ready_replicas, d.status.updated_replicas, d.status.unavailable_replicas) == (
        3,
        3,
        None,
    )


def test_rolling_update_keeps_site_online_and_copies_change_cause(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    kubesim.set_ready_after(0.2)
    apps.create_namespaced_deployment(kube_namespace, site_deployment("site"))
    wait_rolled_out(apps, kube_namespace, "site")
    kubesim.reset_availability([kube_namespace])
    set_image(apps, kube_namespace, "site", "subscribie/subscribie:v0.11", cause="upgrade to v0.11")
    # maxSurge 1: a second pod runs alongside the old one until it is Ready.
    wait_for(
        lambda: apps.read_namespaced_deployment("site", kube_namespace).status.replicas == 2,
        what="surge pod",
    )
    d = wait_rolled_out(apps, kube_namespace, "site")
    assert d.metadata.annotations[REVISION] == "2"
    assert kubesim.availability(kube_namespace) == {f"{kube_namespace}/site": 1}
    rss = sorted(
        apps.list_namespaced_replica_set(kube_namespace).items,
        key=lambda r: r.metadata.annotations[REVISION],
    )
    assert [r.spec.replicas for r in rss] == [0, 1]
    assert rss[1].metadata.annotations["kubernetes.io/change-cause"] == "upgrade to v0.11"
    assert rss[1].spec.template.spec.containers[0].image == "subscribie/subscribie:v0.11"


def test_surge_and_unavailable_bounds_during_rollout(
    kubesim: KubeSim, apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str
) -> None:
    kubesim.set_ready_after(0.15)
    apps.create_namespaced_deployment(
        kube_namespace, site_deployment("wide", replicas=4, max_surge="25%", max_unavailable="25%")
    )
    wait_rolled_out(apps, kube_namespace, "wide")
    kubesim.reset_availability([kube_namespace])
    set_image(apps, kube_namespace, "wide", "img:2")
    most = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        most = max(most, len(core.list_namespaced_pod(kube_namespace).items))
        d = apps.read_namespaced_deployment("wide", kube_namespace)
        if rolled_out(d.status, d.metadata.generation, 4):
            break
        time.sleep(0.01)
    assert most <= 5  # 4 replicas + maxSurge 1 (25% of 4, rounded up)
    assert kubesim.availability(kube_namespace)[f"{kube_namespace}/wide"] >= 3  # maxUnavailable 1


def test_failing_image_stalls_then_exceeds_progress_deadline(
    kubesim: KubeSim, apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("bad", progress_deadline=1))
    wait_rolled_out(apps, kube_namespace, "bad")
    kubesim.reset_availability([kube_namespace])
    kubesim.set_fail_images(r":broken$")
    set_image(apps, kube_namespace, "bad", "subscribie/subscribie:broken")

    def timed_out() -> bool:
        d = apps.read_namespaced_deployment("bad", kube_namespace)
        p = next(c for c in d.status.conditions if c.type == "Progressing")
        return p.status == "False" and p.reason == "ProgressDeadlineExceeded"

    wait_for(timed_out, timeout=6, what="ProgressDeadlineExceeded")
    d = apps.read_namespaced_deployment("bad", kube_namespace)
    assert (
        d.status.available_replicas == 1
        and d.status.updated_replicas == 1
        and d.status.replicas == 2
    )
    assert (
        kubesim.availability(kube_namespace)[f"{kube_namespace}/bad"] == 1
    )  # old pod kept serving
    broken = [
        p
        for p in core.list_namespaced_pod(kube_namespace).items
        if p.spec.containers[0].image.endswith(":broken")
    ]
    assert len(broken) == 1
    assert broken[0].status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    # Rolling back to the old template recovers.
    set_image(apps, kube_namespace, "bad", "subscribie/subscribie:v0.10")
    d = wait_rolled_out(apps, kube_namespace, "bad")
    assert (
        next(c for c in d.status.conditions if c.type == "Progressing").reason
        == "NewReplicaSetAvailable"
    )


def test_returning_to_an_old_template_renumbers_its_replicaset(
    apps: client.AppsV1Api, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("rev"))
    wait_rolled_out(apps, kube_namespace, "rev")
    set_image(apps, kube_namespace, "rev", "img:2")
    wait_rolled_out(apps, kube_namespace, "rev")
    set_image(apps, kube_namespace, "rev", "subscribie/subscribie:v0.10")
    d = wait_rolled_out(apps, kube_namespace, "rev")
    assert d.metadata.annotations[REVISION] == "3"
    rss = apps.list_namespaced_replica_set(kube_namespace).items
    assert len(rss) == 2
    back = next(
        r for r in rss if r.spec.template.spec.containers[0].image == "subscribie/subscribie:v0.10"
    )
    assert back.metadata.annotations[REVISION] == "3"
    assert back.metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"


def test_recreate_strategy_never_overlaps_versions(
    kubesim: KubeSim, apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(
        kube_namespace, site_deployment("rec", replicas=2, strategy="Recreate")
    )
    wait_rolled_out(apps, kube_namespace, "rec")
    set_image(apps, kube_namespace, "rec", "img:2")
    images_together = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        images = {
            p.spec.containers[0].image for p in core.list_namespaced_pod(kube_namespace).items
        }
        if len(images) > 1:
            images_together = images
        d = apps.read_namespaced_deployment("rec", kube_namespace)
        if rolled_out(d.status, d.metadata.generation, 2):
            break
        time.sleep(0.005)
    assert not images_together
    assert {p.spec.containers[0].image for p in core.list_namespaced_pod(kube_namespace).items} == {
        "img:2"
    }


def test_paused_deployment_does_not_roll(apps: client.AppsV1Api, kube_namespace: str) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("pz"))
    wait_rolled_out(apps, kube_namespace, "pz")
    apps.patch_namespaced_deployment("pz", kube_namespace, {"spec": {"paused": True}})
    set_image(apps, kube_namespace, "pz", "img:2")

    def paused_condition() -> bool:
        d = apps.read_namespaced_deployment("pz", kube_namespace)
        p = next(c for c in d.status.conditions if c.type == "Progressing")
        return p.reason == "DeploymentPaused" and p.status == "Unknown"

    wait_for(paused_condition, what="DeploymentPaused")
    time.sleep(0.2)
    assert len(apps.list_namespaced_replica_set(kube_namespace).items) == 1
    apps.patch_namespaced_deployment("pz", kube_namespace, {"spec": {"paused": False}})
    d = wait_rolled_out(apps, kube_namespace, "pz")
    assert d.spec.template.spec.containers[0].image == "img:2"
    assert len(apps.list_namespaced_replica_set(kube_namespace).items) == 2


def test_revision_history_limit_and_scale_to_zero(
    apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str
) -> None:
    body = site_deployment("hist")
    body["spec"]["revisionHistoryLimit"] = 1
    apps.create_namespaced_deployment(kube_namespace, body)
    # Revision 1 is the created template only once the controller has seen it: patch before
    # that and the first ReplicaSet is img:v1's, leaving revisions [2, 3] below.
    wait_rolled_out(apps, kube_namespace, "hist")
    for tag in ("v1", "v2", "v3"):
        set_image(apps, kube_namespace, "hist", f"img:{tag}")
        wait_rolled_out(apps, kube_namespace, "hist")
    wait_for(
        lambda: len(apps.list_namespaced_replica_set(kube_namespace).items) == 2, what="history GC"
    )
    revisions = sorted(
        int(r.metadata.annotations[REVISION])
        for r in apps.list_namespaced_replica_set(kube_namespace).items
    )
    assert revisions == [3, 4]
    apps.patch_namespaced_deployment_scale("hist", kube_namespace, {"spec": {"replicas": 0}})
    wait_for(lambda: core.list_namespaced_pod(kube_namespace).items == [], what="pods gone")
    d = wait_rolled_out(apps, kube_namespace, "hist")
    assert (d.status.replicas or 0) == 0 and d.spec.replicas == 0


def test_min_ready_seconds_delays_availability(apps: client.AppsV1Api, kube_namespace: str) -> None:
    body = site_deployment("slow")
    body["spec"]["minReadySeconds"] = 1
    apps.create_namespaced_deployment(kube_namespace, body)
    wait_for(
        lambda: (
            (apps.read_namespaced_deployment("slow", kube_namespace).status.ready_replicas or 0)
            == 1
        ),
        what="ready",
    )
    assert (
        apps.read_namespaced_deployment("slow", kube_namespace).status.available_replicas or 0
    ) == 0
    wait_rolled_out(apps, kube_namespace, "slow", timeout=5)


def test_deleted_pod_is_replaced(
    apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("heal", replicas=2))
    wait_rolled_out(apps, kube_namespace, "heal")
    victim = core.list_namespaced_pod(kube_namespace).items[0].metadata.name
    core.delete_namespaced_pod(victim, kube_namespace)
    wait_for(
        lambda: (
            sorted(
                p.metadata.name
                for p in core.list_namespaced_pod(kube_namespace).items
                if p.metadata.name != victim
            )
            and len(core.list_namespaced_pod(kube_namespace).items) == 2
        ),
        what="replacement pod",
    )
    wait_rolled_out(apps, kube_namespace, "heal")
