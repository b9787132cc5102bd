"""kubectl against what a cluster has besides workloads: nodes, pod I/O, endpoints, events...

Every test runs against kubesim and, in contract mode (``KUBESIM_CONTRACT_KUBECONFIG``), a
real v1.37 control plane whose nodes are kwok fakes: assertions that only hold for kubesim
(its node's name, its "kubesim runs no containers" messages) are guarded by ``simulated``.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from .kubectl_target import KUBECTL, Target
from .support import site_deployment, wait_for

pytestmark = [pytest.mark.contract, pytest.mark.skipif(KUBECTL is None, reason="kubectl not found")]

NO_RUNTIME = "kubesim runs no containers"


def simulated(t: Target) -> bool:
    return t.sim is not None


def get_json(t: Target, *args: str) -> Any:
    return json.loads(t.kubectl("get", *args, "-o", "json").stdout)


def rolled_out(t: Target, name: str, replicas: int = 1, **kw: Any) -> str:
    """Apply a site Deployment, wait for it, return the name of one of its pods."""
    t.apply_manifest(site_deployment(name, replicas=replicas, **kw))
    t.kubectl("rollout", "status", f"deployment/{name}", "--timeout=60s")
    pods = get_json(t, "pods", "-l", f"subscribie-site={name}")["items"]
    return str(sorted(p["metadata"]["name"] for p in pods)[0])


def service(name: str, target_port: Any = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"subscribie-site": name}},
        "spec": {
            "selector": {"subscribie-site": name},
            "ports": [{"port": 80, "targetPort": target_port}],
        },
    }


# -- 1. logs, exec, attach, port-forward -------------------------------------------------------
def test_logs_exec_attach_port_forward_answer_for_an_existing_pod(target: Target) -> None:
    pod = rolled_out(target, "io")
    not_found = f'pods "{pod}" not found'

    logs = target.kubectl("logs", pod, check=False)
    assert not_found not in logs.stderr
    by_deployment = target.kubectl("logs", "deployment/io", "--timestamps", check=False)
    assert "not found" not in by_deployment.stderr
    if simulated(target):
        assert logs.returncode == 0, logs.stderr
        assert NO_RUNTIME in logs.stdout and '"subscribie"' in logs.stdout
        assert logs.stdout.count("\n") == 1
        stamp, _, line = by_deployment.stdout.partition(" ")
        assert stamp.endswith("Z") and len(stamp) == len("2026-01-01T00:00:00.000000000Z")
        assert NO_RUNTIME in line

    execd = target.kubectl("exec", pod, "--", "true", check=False, timeout=60)
    assert not_found not in execd.stderr
    if simulated(target):
        # As from kube-apiserver's WebSocket-to-SPDY translator when the kubelet is unreachable.
        assert execd.returncode != 0
        assert execd.stderr.startswith(
            'error: Internal error occurred: error sending request: Post "https://kubesim-node:'
            f'10250/exec/{target.namespace}/{pod}/subscribie?command=true&error=1&output=1": '
        ), execd.stderr
        assert NO_RUNTIME in execd.stderr

    # attach and port-forward hold the terminal when they work, so give them a deadline.
    for args in (("attach", pod), ("port-forward", pod, "0:80")):
        try:
            proc = target.kubectl(*args, check=False, timeout=20)
        except subprocess.TimeoutExpired:
            assert not simulated(target), f"kubectl {args[0]} hung on kubesim"
            continue
        assert not_found not in proc.stderr
        if simulated(target):
            assert proc.returncode != 0 and NO_RUNTIME in proc.stderr, proc.stderr


def test_pod_io_for_a_missing_pod_is_the_real_not_found(target: Target) -> None:
    for args in (("logs", "nope"), ("exec", "nope", "--", "true")):
        proc = target.kubectl(*args, check=False)
        assert proc.returncode != 0
        assert 'pods "nope" not found' in proc.stderr, proc.stderr
    raw = target.kubectl(
        "get", "--raw", f"/api/v1/namespaces/{target.namespace}/pods/nope/log", check=False
    )
    assert raw.returncode != 0
    assert 'Error from server (NotFound): pods "nope" not found' in raw.stderr


# -- 2. nodes, service accounts, root CA, endpoints, prune, access reviews --------------------
def test_nodes_are_ready_with_capacity_and_the_usual_conditions(target: Target) -> None:
    pod = rolled_out(target, "placed")
    nodes = get_json(target, "nodes")["items"]
    assert nodes
    names = {n["metadata"]["name"] for n in nodes}
    if simulated(target):
        assert names == {"kubesim-node"}
    node_of_pod = get_json(target, "pod", pod)["spec"]["nodeName"]
    assert node_of_pod in names
    node = next(n for n in nodes if n["metadata"]["name"] == node_of_pod)
    status = node["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert {"MemoryPressure", "DiskPressure", "PIDPressure", "Ready"} <= set(conditions)
    assert conditions["Ready"]["status"] == "True"
    assert conditions["MemoryPressure"]["status"] == "False"
    for resources in (status["capacity"], status["allocatable"]):
        assert {"cpu", "memory", "pods"} <= set(resources)
    assert any(a["type"] == "InternalIP" for a in status["addresses"])
    assert status["nodeInfo"]["kubeletVersion"]  # kwok's says "fake"

    table = target.kubectl("get", "nodes", node_of_pod).stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert table[1].split()[:2] == [node_of_pod, "Ready"]
    described = target.kubectl("describe", "node", node_of_pod).stdout
    assert "Conditions:" in described and "Allocatable:" in described
    assert pod in described  # "Non-terminated Pods" lists it
    if simulated(target):
        assert "kubesim (no container runtime)" in described


def test_every_namespace_has_the_default_service_account_and_root_ca(target: Target) -> None:
    def exists(*args: str) -> bool:
        return target.kubectl("get", *args, check=False).returncode == 0

    wait_for(lambda: exists("serviceaccount", "default"), 30, 0.2, "the default ServiceAccount")
    wait_for(lambda: exists("configmap", "kube-root-ca.crt"), 30, 0.2, "kube-root-ca.crt")
    ca = get_json(target, "configmap", "kube-root-ca.crt")
    assert ca["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert "kubernetes.io/description" in ca["metadata"]["annotations"]
    table = target.kubectl("get", "serviceaccounts").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE"] and table[1].split()[0] == "default"
    # Their controllers put them back.
    uid = get_json(target, "serviceaccount", "default")["metadata"]["uid"]
    target.kubectl("delete", "serviceaccount", "default")
    wait_for(
        lambda: (
            exists("serviceaccount", "default")
            and get_json(target, "serviceaccount", "default")["metadata"]["uid"] != uid
        ),
        30,
        0.2,
        "the default ServiceAccount recreated",
    )
    target.kubectl("delete", "configmap", "kube-root-ca.crt")
    wait_for(lambda: exists("configmap", "kube-root-ca.crt"), 30, 0.2, "kube-root-ca.crt back")


def _endpoint_ips(t: Target, name: str) -> tuple[list[str], list[str]]:
    ep = get_json(t, "endpoints", name)
    ready = [a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []]
    unready = [a["ip"] for s in ep.get("subsets") or [] for a in s.get("notReadyAddresses") or []]
    return sorted(ready), sorted(unready)


def _slice(t: Target, name: str) -> dict[str, Any]:
    items = get_json(t, "endpointslices", "-l", f"kubernetes.io/service-name={name}")["items"]
    assert len(items) == 1, items
    return dict(items[0])


def test_endpoints_and_endpointslices_follow_the_ready_pods(target: Target) -> None:
    target.apply_manifest(service("ep"))
    pod = rolled_out(target, "ep")
    pod_ip = get_json(target, "pod", pod)["status"]["podIP"]
    wait_for(lambda: _endpoint_ips(target, "ep") == ([pod_ip], []), 30, 0.2, "one endpoint")
    ep = get_json(target, "endpoints", "ep")
    subset = ep["subsets"][0]
    assert subset["ports"] == [{"port": 80, "protocol": "TCP"}]
    address = subset["addresses"][0]
    assert address["targetRef"]["kind"] == "Pod" and address["targetRef"]["name"] == pod
    assert address["nodeName"] == get_json(target, "pod", pod)["spec"]["nodeName"]
    assert ep["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"] == "endpoint-controller"
    assert ep["metadata"]["labels"]["subscribie-site"] == "ep"  # the Service's labels

    got = target.kubectl("get", "endpoints", "ep")
    assert "v1 Endpoints is deprecated in v1.33+" in got.stderr
    assert f"{pod_ip}:80" in got.stdout

    eps = _slice(target, "ep")
    assert eps["addressType"] == "IPv4"
    assert [(p["port"], p["protocol"]) for p in eps["ports"]] == [(80, "TCP")]
    (endpoint,) = eps["endpoints"]
    assert endpoint["addresses"] == [pod_ip]
    assert endpoint["conditions"]["ready"] is True and endpoint["conditions"]["serving"] is True
    assert endpoint["targetRef"]["name"] == pod
    owner = eps["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Service", "ep", True)
    labels = eps["metadata"]["labels"]
    assert labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    described = target.kubectl("describe", "service", "ep").stdout
    assert re.search(rf"^Endpoints: +{re.escape(pod_ip)}:80$", described, re.M), described

    target.kubectl("scale", "deployment/ep", "--replicas=2")
    target.kubectl("rollout", "status", "deployment/ep", "--timeout=60s")
    wait_for(lambda: len(_endpoint_ips(target, "ep")[0]) == 2, 30, 0.2, "two endpoints")
    wait_for(lambda: len(_slice(target, "ep").get("endpoints") or []) == 2, 30, 0.2, "slice of 2")
    target.kubectl("scale", "deployment/ep", "--replicas=0")
    wait_for(lambda: not get_json(target, "endpoints", "ep").get("subsets"), 30, 0.2, "none left")
    wait_for(lambda: not _slice(target, "ep").get("endpoints"), 30, 0.2, "an empty slice")
    # The slices go with their Service (owner references), the Endpoints with it too.
    target.kubectl("delete", "service", "ep")
    wait_for(
        lambda: (
            not get_json(target, "endpointslices", "-l", "kubernetes.io/service-name=ep")["items"]
            and target.kubectl("get", "endpoints", "ep", check=False).returncode != 0
        ),
        30,
        0.2,
        "endpoints gone with the Service",
    )


def test_endpoints_resolve_named_target_ports_and_list_unready_pods(target: Target) -> None:
    manifest = site_deployment("named")
    manifest["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": 8080, "name": "web"}
    ]
    target.apply_manifest(service("named", target_port="web"), manifest)
    target.kubectl("rollout", "status", "deployment/named", "--timeout=60s")
    wait_for(lambda: _endpoint_ips(target, "named")[0], 30, 0.2, "a ready endpoint")
    subset = get_json(target, "endpoints", "named")["subsets"][0]
    assert subset["ports"] == [{"port": 8080, "protocol": "TCP"}]
    if simulated(target):
        # kubesim's broken images never become Ready: their pods are listed as not ready.
        target.kubectl("set", "image", "deployment/named", f"subscribie={target.broken_image}")
        wait_for(lambda: _endpoint_ips(target, "named")[1], 30, 0.2, "an unready endpoint")
        conditions = [e["conditions"] for e in _slice(target, "named")["endpoints"]]
        assert {"ready": False, "serving": False, "terminating": False} in conditions


def test_apply_prune_with_the_default_allowlist(target: Target) -> None:
    def cm(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"pruned-by": "test"}},
            "data": {"k": "v"},
        }

    both = yaml.safe_dump_all([cm("keep"), cm("drop")])
    first = target.kubectl("apply", "--prune", "-l", "pruned-by=test", "-f", "-", stdin=both)
    assert "configmap/drop created" in first.stdout
    again = target.kubectl(
        "apply", "--prune", "-l", "pruned-by=test", "-f", "-", stdin=yaml.safe_dump(cm("keep"))
    )
    assert "configmap/keep unchanged" in again.stdout
    assert "configmap/drop pruned" in again.stdout
    names = target.kubectl("get", "configmaps", "-l", "pruned-by=test", "-o", "name").stdout
    assert names.split() == ["configmap/keep"]


def test_every_default_prune_resource_is_listable(target: Target) -> None:
    # kubectl's defaultNamespacedPruneResources and defaultNonNamespacedPruneResources.
    for resource in (
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "pods",
        "replicationcontrollers",
        "secrets",
        "services",
        "jobs.batch",
        "cronjobs.batch",
        "ingresses.networking.k8s.io",
        "daemonsets.apps",
        "deployments.apps",
        "replicasets.apps",
        "statefulsets.apps",
        "namespaces",
        "persistentvolumes",
    ):
        target.kubectl("get", resource, "-o", "name")


def test_self_subject_reviews_allow_the_admin(target: Target) -> None:
    ssar = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "namespace": target.namespace,
                "verb": "create",
                "group": "apps",
                "resource": "deployments",
            }
        },
    }
    created = json.loads(
        target.kubectl("create", "-f", "-", "-o", "json", stdin=json.dumps(ssar)).stdout
    )
    assert created["kind"] == "SelfSubjectAccessReview"
    assert created["status"] == {"allowed": True}  # an admin's answer carries no reason
    assert created["spec"]["resourceAttributes"]["resource"] == "deployments"
    ssrr = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": target.namespace},
    }
    rules = json.loads(
        target.kubectl("create", "-f", "-", "-o", "json", stdin=json.dumps(ssrr)).stdout
    )
    assert any("*" in r["verbs"] for r in rules["status"]["resourceRules"])
    # Reviews are not stored: there is nothing to get.
    assert target.kubectl("get", "selfsubjectaccessreviews", check=False).returncode != 0


# -- 3. events ---------------------------------------------------------------------------------
def _events_about(t: Target, kind: str, name: str) -> list[dict[str, Any]]:
    return list(
        get_json(
            t,
            "events",
            "--field-selector",
            f"involvedObject.kind={kind},involvedObject.name={name}",
        )["items"]
    )


def test_deployment_rollout_records_scaling_events(target: Target) -> None:
    rolled_out(target, "evt")
    first_rs = get_json(target, "rs", "-l", "subscribie-site=evt")["items"][0]["metadata"]["name"]
    target.kubectl("set", "image", "deployment/evt", "subscribie=subscribie/subscribie:v0.11")
    target.kubectl("rollout", "status", "deployment/evt", "--timeout=60s")
    rss = get_json(target, "rs", "-l", "subscribie-site=evt")["items"]
    (second_rs,) = [r["metadata"]["name"] for r in rss if r["metadata"]["name"] != first_rs]

    want = [
        f"Scaled up replica set {first_rs} from 0 to 1",
        f"Scaled up replica set {second_rs} from 0 to 1",
        f"Scaled down replica set {first_rs} from 1 to 0",
    ]

    def messages() -> list[str]:
        return [e["message"] for e in _events_about(target, "Deployment", "evt")]

    wait_for(lambda: set(want) <= set(messages()), 30, 0.2, "the scaling events")
    for event in _events_about(target, "Deployment", "evt"):
        assert event["reason"] == "ScalingReplicaSet" and event["type"] == "Normal"
        assert event["source"]["component"] == "deployment-controller"
        assert event["involvedObject"]["apiVersion"] == "apps/v1"
        assert event["count"] >= 1 and event["firstTimestamp"] and event["lastTimestamp"]
    described = target.kubectl("describe", "deployment", "evt").stdout
    events_part = described[described.index("Events:") :]
    assert "ScalingReplicaSet" in events_part and "deployment-controller" in events_part
    for message in want:
        assert message in events_part
    # The ReplicaSet controller's events are there too.
    rs_events = _events_about(target, "ReplicaSet", second_rs)
    assert any(
        e["reason"] == "SuccessfulCreate" and e["message"].startswith("Created pod: ")
        for e in rs_events
    )
    table = target.kubectl("get", "events", "--field-selector", "involvedObject.name=evt").stdout
    assert "ScalingReplicaSet" in table and "deployment/evt" in table


def test_pods_get_the_schedulers_event(target: Target) -> None:
    pod = rolled_out(target, "sched")
    node = get_json(target, "pod", pod)["spec"]["nodeName"]
    message = f"Successfully assigned {target.namespace}/{pod} to {node}"
    wait_for(
        lambda: any(e["message"] == message for e in _events_about(target, "Pod", pod)),
        30,
        0.2,
        "the Scheduled event",
    )
    (event,) = [e for e in _events_about(target, "Pod", pod) if e["reason"] == "Scheduled"]
    assert event["reportingComponent"] == "default-scheduler" and event["action"] == "Binding"
    assert event["eventTime"] and event["firstTimestamp"] is None
    described = target.kubectl("describe", "pod", pod).stdout
    assert re.search(rf"Normal +Scheduled +\S+ +default-scheduler +{re.escape(message)}", described)


def test_a_repeated_event_is_counted_not_duplicated(target: Target) -> None:
    pod = rolled_out(target, "again")
    rs = get_json(target, "pod", pod)["metadata"]["ownerReferences"][0]["name"]
    for replicas in (0, 1):
        target.kubectl("scale", "deployment/again", f"--replicas={replicas}")
        target.kubectl("rollout", "status", "deployment/again", "--timeout=60s")
    message = f"Scaled up replica set {rs} from 0 to 1"

    def scaled_up() -> list[dict[str, Any]]:
        return [e for e in _events_about(target, "Deployment", "again") if e["message"] == message]

    wait_for(lambda: scaled_up() and scaled_up()[0]["count"] == 2, 30, 0.2, "count 2")
    assert len(scaled_up()) == 1
    assert "(x2 over" in target.kubectl("describe", "deployment", "again").stdout


# -- 4. collisionCount -------------------------------------------------------------------------
def test_a_replicaset_name_collision_bumps_and_keeps_collision_count(target: Target) -> None:
    rolled_out(target, "clash")
    (rs,) = target.kubectl("get", "rs", "-l", "subscribie-site=clash", "-o", "name").stdout.split()
    # Leave the ReplicaSet behind, and change its template: the Deployment, created again with
    # the same template, computes the same name for its new ReplicaSet, which is taken.
    target.kubectl("delete", "deployment", "clash", "--cascade=orphan")
    patch = {"spec": {"template": {"metadata": {"annotations": {"tampered": "yes"}}}}}
    target.kubectl("patch", rs, "--type=merge", "-p", json.dumps(patch))
    target.apply_manifest(site_deployment("clash"))
    target.kubectl("rollout", "status", "deployment/clash", "--timeout=60s")
    deployment = get_json(target, "deployment", "clash")
    assert deployment["status"]["collisionCount"] == 1
    new_rs = [
        r["metadata"]["name"]
        for r in get_json(target, "rs", "-l", "subscribie-site=clash")["items"]
        if f"replicaset.apps/{r['metadata']['name']}" != rs
    ]
    assert len(new_rs) == 1
    template = get_json(target, "rs", new_rs[0])["spec"]["template"]
    assert "tampered" not in (template["metadata"].get("annotations") or {})
