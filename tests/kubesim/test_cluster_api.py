"""kubesim's answers at the HTTP level, where kubectl hides the detail.

Pod subresources (log, exec, attach, portforward) status codes and bodies, access reviews,
discovery of the new types, Table content types, and the event, endpoints and bootstrap
controllers' corner cases. The kubectl-level behaviour is in test_kubectl_cluster.py.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubesim import KubeSim
from kubesim.resources import BY_KEY

from .support import site_deployment, wait_for, wait_rolled_out

TABLE_ACCEPT = "application/json;as=Table;g=meta.k8s.io;v=v1"
UPGRADE = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}


@pytest.fixture
def http(kubesim: KubeSim) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=kubesim.url, timeout=10) as c:
        yield c


def running_pod(apps: client.AppsV1Api, ns: str, name: str = "io", **kw: Any) -> str:
    apps.create_namespaced_deployment(ns, site_deployment(name, **kw))
    wait_rolled_out(apps, ns, name)
    pods = client.CoreV1Api(apps.api_client).list_namespaced_pod(
        ns, label_selector=f"subscribie-site={name}"
    )
    return str(pods.items[0].metadata.name)


def bare_pod(name: str, containers: tuple[str, ...] = ("app",)) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": c, "image": f"img/{c}:1"} for c in containers]},
    }


# -- pods/log ----------------------------------------------------------------------------------
def test_log_of_a_running_container_is_one_plain_text_line(
    http: httpx.Client, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    ns = kube_namespace
    pod = running_pod(apps, ns)
    base = f"/api/v1/namespaces/{ns}/pods/{pod}/log"
    r = http.get(base)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain"
    assert r.text == (
        'kubesim runs no containers, so container "subscribie" (image '
        f'subscribie/subscribie:v0.10) of pod "{ns}/{pod}" has written no output\n'
    )
    assert http.get(base, params={"container": "subscribie", "follow": "true"}).text == r.text
    assert http.get(base, params={"tailLines": "0"}).text == ""
    assert http.get(base, params={"limitBytes": "7"}).text == "kubesim"
    stamped = http.get(base, params={"timestamps": "true"}).text
    assert stamped.endswith(r.text) and stamped[len("2026-01-01T00:00:00.000000000Z")] == " "
    # The client's read_namespaced_pod_log gets the same text.
    core = client.CoreV1Api(apps.api_client)
    assert core.read_namespaced_pod_log(pod, ns) == r.text


def test_log_refusals_follow_the_api_server_and_kubelet(
    kubesim: KubeSim, http: httpx.Client, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    ns = kube_namespace
    pod = running_pod(apps, ns)
    base = f"/api/v1/namespaces/{ns}/pods"

    def status(path: str, **params: str) -> tuple[int, dict[str, Any]]:
        r = http.get(f"{base}/{path}", params=params)
        return r.status_code, r.json()

    code, body = status("nope/log")
    assert (code, body["reason"], body["message"]) == (404, "NotFound", 'pods "nope" not found')
    assert body["details"] == {"name": "nope", "kind": "pods"}  # an empty group is left out
    code, body = status(f"{pod}/log", container="other")
    assert (code, body["reason"]) == (400, "BadRequest")
    assert body["message"] == f"container other is not valid for pod {pod}"
    code, body = status(f"{pod}/log", previous="true")
    assert code == 400
    assert body["message"] == (
        f'previous terminated container "subscribie" in pod "{pod}" not found'
    )
    code, body = status(f"{pod}/log", tailLines="-1")
    assert (code, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        f'PodLogOptions "{pod}" is invalid: tailLines: Invalid value: -1: must be greater than '
        "or equal to 0"
    )

    core = client.CoreV1Api(apps.api_client)
    kubesim.set_ready_after(60)  # pods created now stay Pending, unscheduled and not started
    core.create_namespaced_pod(ns, bare_pod("two", ("a", "b")))
    code, body = status("two/log")
    assert code == 400
    assert body["message"] == "a container name must be specified for pod two, choose one of: [a b]"
    # Not scheduled yet: the API server streams nothing.
    r = http.get(f"{base}/two/log", params={"container": "a"})
    assert (r.status_code, r.content) == (204, b"")
    # Scheduled but not started: the kubelet's refusal.
    core.create_namespaced_pod(ns, {**bare_pod("waiting"), "spec": {
        **bare_pod("waiting")["spec"], "nodeName": "kubesim-node"}})  # fmt: skip
    code, body = status("waiting/log")
    assert code == 400
    assert (
        body["message"] == 'container "app" in pod "waiting" is waiting to start: ContainerCreating'
    )


def test_log_of_a_crashing_container_and_its_previous_attempt(
    kubesim: KubeSim, http: httpx.Client, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    ns = kube_namespace
    kubesim.set_fail_images("broken")
    apps.create_namespaced_deployment(ns, site_deployment("crash", image="img:broken"))
    core = client.CoreV1Api(apps.api_client)

    def started() -> str | None:
        pods = core.list_namespaced_pod(ns, label_selector="subscribie-site=crash").items
        return pods[0].metadata.name if pods and pods[0].status.phase == "Running" else None

    pod = wait_for(started, what="a started (crashing) pod")
    for params in ({}, {"previous": "true"}):
        r = http.get(f"/api/v1/namespaces/{ns}/pods/{pod}/log", params=params)
        assert r.status_code == 200 and "kubesim runs no containers" in r.text


# -- pods/exec, attach, portforward ------------------------------------------------------------
@pytest.mark.parametrize(
    ("sub", "what"),
    [
        ("exec", 'exec into container "subscribie" of pod'),
        ("attach", 'attach to container "subscribie" of pod'),
        ("portforward", "forward ports of pod"),
    ],
)
def test_streaming_subresources_fail_to_dial_the_missing_kubelet(
    http: httpx.Client, apps: client.AppsV1Api, kube_namespace: str, sub: str, what: str
) -> None:
    ns = kube_namespace
    pod = running_pod(apps, ns, f"s-{sub}")
    path = f"/api/v1/namespaces/{ns}/pods/{pod}/{sub}"
    for method in ("GET", "POST"):
        r = http.request(method, path, params={"command": "true"}, headers=UPGRADE)
        assert r.status_code == 500
        body = r.json()
        assert body == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'error dialing backend: kubesim runs no containers: node "kubesim-node" '
            f'has no kubelet or container runtime to {what} "{ns}/{pod}"',
            "code": 500,
        }  # no reason: StatusReasonUnknown, as for any failed dial
    r = http.post(path, params={"command": "true"})
    assert r.status_code == 400 and r.json()["message"] == "Upgrade request required"
    r = http.post(f"/api/v1/namespaces/{ns}/pods/nope/{sub}", headers=UPGRADE)
    assert r.status_code == 404 and r.json()["message"] == 'pods "nope" not found'
    assert http.delete(path).status_code == 405
    if sub != "portforward":
        r = http.post(path, params={"container": "x"}, headers=UPGRADE)
        assert (r.status_code, r.json()["message"]) == (
            400,
            f"container x is not valid for pod {pod}",
        )


def _websocket(sim: KubeSim, path: str, protocols: str) -> tuple[bytes, bytes]:
    """A raw WebSocket upgrade: (the response head, everything after it until close)."""
    host, port = sim.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n"
                "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Protocol: {protocols}\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(h.split(b":")[1])
                for h in head.split(b"\r\n")
                if h.lower().startswith(b"content-length:")
            ),
            None,
        )
        # Until close after a 101; just the body otherwise (the connection stays open).
        while (chunk := sock.recv(65536)) if length is None or len(rest) < length else b"":
            rest += chunk
    return head, rest


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while data:
        opcode, n, at = data[0] & 0x0F, data[1] & 0x7F, 2
        if n == 126:
            n, at = int.from_bytes(data[2:4], "big"), 4
        frames.append((opcode, data[at : at + n]))
        data = data[at + n :]
    return frames


def test_exec_over_websocket_v5_reports_the_dial_failure_on_the_error_channel(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    ns = kube_namespace
    pod = running_pod(apps, ns, "ws")
    query = "command=ls&command=-l&container=subscribie&stdout=true&stderr=true"
    head, rest = _websocket(
        kubesim,
        f"/api/v1/namespaces/{ns}/pods/{pod}/exec?{query}",
        "v5.channel.k8s.io, v4.channel.k8s.io",
    )
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols"
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in lines  # RFC 6455's example
    assert "Sec-WebSocket-Protocol: v5.channel.k8s.io" in lines
    (op1, ready), (op2, error), (op3, close) = _frames(rest)
    assert (op1, ready) == (2, b"\x01")  # an empty stdout message: the stream is up
    assert op2 == 2 and error[0] == 3  # the error channel
    cause = (
        f'error sending request: Post "https://kubesim-node:10250/exec/{ns}/{pod}/subscribie'
        '?command=ls&command=-l&error=1&output=1": kubesim runs no containers: node '
        '"kubesim-node" has no kubelet or container runtime'
    )
    assert json.loads(error[1:]) == {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {cause}",
        "reason": "InternalError",
        "details": {"causes": [{"message": cause}]},
        "code": 500,
    }
    assert (op3, close) == (8, (1000).to_bytes(2, "big"))
    # Without v5 (the official Python client offers v4 only) the API server proxies the
    # upgrade to the kubelet, and the dial fails before any upgrade.
    head, rest = _websocket(
        kubesim, f"/api/v1/namespaces/{ns}/pods/{pod}/exec?{query}", "v4.channel.k8s.io"
    )
    assert head.startswith(b"HTTP/1.1 500 ")
    assert json.loads(rest)["message"].startswith("error dialing backend: kubesim runs no")


def test_exec_on_unscheduled_pods_and_on_a_deleted_node() -> None:
    with KubeSim(ready_after=60) as sim, httpx.Client(base_url=sim.url, timeout=10) as http:
        api = sim.api
        api.create(BY_KEY["pods"], "default", bare_pod("floating"))
        r = http.post("/api/v1/namespaces/default/pods/floating/exec", headers=UPGRADE)
        assert r.status_code == 400
        assert r.json()["message"] == "pod floating does not have a host assigned"
        placed = bare_pod("placed")
        placed["spec"]["nodeName"] = "kubesim-node"
        api.create(BY_KEY["pods"], "default", placed)
        api.delete(BY_KEY["nodes"], "", "kubesim-node")
        for sub in ("exec", "log"):
            r = http.request(
                "POST" if sub == "exec" else "GET",
                f"/api/v1/namespaces/default/pods/placed/{sub}",
                headers=UPGRADE,
            )
            assert r.status_code == 404
            assert r.json()["message"] == 'nodes "kubesim-node" not found'


def test_discovery_lists_pod_subresources_and_the_new_types(http: httpx.Client) -> None:
    core = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
    assert core["pods/log"]["verbs"] == ["get"] and core["pods/log"]["kind"] == "Pod"
    assert core["pods/exec"]["verbs"] == ["create", "get"]
    assert core["pods/exec"]["kind"] == "PodExecOptions"
    assert core["pods/attach"]["kind"] == "PodAttachOptions"
    assert core["pods/portforward"]["kind"] == "PodPortForwardOptions"
    assert core["nodes"]["namespaced"] is False and core["nodes"]["shortNames"] == ["no"]
    assert core["endpoints"]["shortNames"] == ["ep"]
    assert core["serviceaccounts"]["shortNames"] == ["sa"]
    assert core["namespaces"]["verbs"] == [
        "create", "delete", "get", "list", "patch", "update", "watch"
    ]  # fmt: skip
    groups = {g["name"] for g in http.get("/apis").json()["groups"]}
    assert {"authorization.k8s.io", "batch", "discovery.k8s.io", "coordination.k8s.io"} <= groups
    authz = http.get("/apis/authorization.k8s.io/v1").json()["resources"]
    ssar = next(r for r in authz if r["name"] == "selfsubjectaccessreviews")
    assert ssar["verbs"] == ["create"] and "storageVersionHash" not in ssar
    slices = http.get("/apis/discovery.k8s.io/v1").json()["resources"]
    assert [r["name"] for r in slices] == ["endpointslices"]


# -- access reviews ------------------------------------------------------------------------------
def test_self_subject_access_review_with_the_official_client(
    kube_api_client: client.ApiClient, http: httpx.Client
) -> None:
    authz = client.AuthorizationV1Api(kube_api_client)
    review = authz.create_self_subject_access_review(
        {
            "spec": {
                "resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}
            }
        }
    )
    assert review.status.allowed is True and review.status.reason is None
    assert review.spec.resource_attributes.verb == "get"
    non_resource = authz.create_self_subject_access_review(
        {"spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}
    )
    assert non_resource.status.allowed is True
    rules = authz.create_self_subject_rules_review({"spec": {"namespace": "default"}})
    assert rules.status.resource_rules[0].verbs == ["*"]
    assert rules.status.incomplete is False
    with pytest.raises(ApiException) as err:
        authz.create_self_subject_rules_review({"spec": {}})
    assert err.value.status == 400
    assert json.loads(err.value.body)["message"] == "no namespace on request"
    with pytest.raises(ApiException) as err:
        authz.create_self_subject_access_review({"spec": {}})
    assert err.value.status == 422
    assert json.loads(err.value.body)["message"] == (
        'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec: Invalid value: '
        "null: exactly one of nonResourceAttributes or resourceAttributes must be specified"
    )
    r = http.post(
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        json={"spec": {"resourceAttributes": {"verb": "list", "resource": "nodes"}}},
    )
    assert r.status_code == 201
    assert r.json()["metadata"] == {} and r.json()["apiVersion"] == "authorization.k8s.io/v1"
    assert http.get("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").status_code == 405


# -- Table responses -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_table_responses_are_plain_application_json(
    http: httpx.Client, apps: client.AppsV1Api, kube_namespace: str, version: str
) -> None:
    """The real server sends a Table as ``application/json``, with no as/g/v parameters.

    (apiserver ``transformResponseObject`` calls ``WriteObjectNegotiated(...,
    listGVKInContentType=false)``, so the Content-Type is the serializer's media type; only
    aggregated discovery adds ``;g=...;v=...;as=...``; a watch of JSON keeps it as is.)
    """
    ns = kube_namespace
    running_pod(apps, ns, "tbl")
    accept = f"application/json;as=Table;g=meta.k8s.io;v={version}"
    for path in (
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        f"/apis/apps/v1/namespaces/{ns}/deployments/tbl",
        f"/api/v1/namespaces/{ns}/configmaps",
    ):
        r = http.get(path, headers={"Accept": accept})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.json()["kind"] == "Table" and r.json()["apiVersion"] == f"meta.k8s.io/{version}"
    with http.stream(
        "GET",
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        params={"watch": "true", "timeoutSeconds": "1"},
        headers={"Accept": accept},
    ) as watch:
        assert watch.headers["content-type"] == "application/json"
        first = json.loads(next(watch.iter_lines()))
        assert first["object"]["kind"] == "Table"


def test_a_table_nobody_serves_is_not_acceptable(http: httpx.Client, kube_namespace: str) -> None:
    """No acceptable Accept clause: 406, before any 404, for get, list and watch alike."""
    ns = kube_namespace
    accept = {"Accept": "application/json;as=Table;g=meta.k8s.io;v=v9"}
    for path in (
        f"/api/v1/namespaces/{ns}/configmaps/nope",
        f"/api/v1/namespaces/{ns}/configmaps",
        f"/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1",
    ):
        r = http.get(path, headers=accept)
        assert r.status_code == 406 and r.headers["content-type"] == "application/json"
        assert r.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "only the following media types are accepted: application/json, "
            "application/yaml, application/vnd.kubernetes.protobuf",
            "reason": "NotAcceptable",
            "code": 406,
        }
    fallback = {"Accept": "application/json;as=Table;g=meta.k8s.io;v=v9, application/json"}
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps", headers=fallback).json()["kind"] == (
        "ConfigMapList"
    )


# -- the node, namespace defaults, endpoints, events -------------------------------------------
def test_node_table_and_its_lease(http: httpx.Client) -> None:
    table = http.get("/api/v1/nodes", headers={"Accept": TABLE_ACCEPT}).json()
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == [
        "Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP",
        "OS-Image", "Kernel-Version", "Container-Runtime",
    ]  # fmt: skip
    cells = dict(zip(columns, table["rows"][0]["cells"], strict=True))
    assert (cells["Name"], cells["Status"], cells["Roles"]) == ("kubesim-node", "Ready", "<none>")
    assert cells["Internal-IP"] == "10.0.0.1" and cells["External-IP"] == "<none>"
    assert cells["Kernel-Version"] == "kubesim (amd64)"
    lease = http.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/kubesim-node")
    assert lease.status_code == 200 and lease.json()["spec"]["holderIdentity"] == "kubesim-node"


def test_namespace_defaults_are_created_with_the_namespace(
    http: httpx.Client, core: client.CoreV1Api, kube_namespace: str
) -> None:
    ns = kube_namespace
    assert [sa.metadata.name for sa in core.list_namespaced_service_account(ns).items] == [
        "default"
    ]
    (cm,) = core.list_namespaced_config_map(ns).items
    assert cm.metadata.name == "kube-root-ca.crt" and "ca.crt" in cm.data
    # A namespace created by server-side apply gets them too.
    name = f"{ns}-ssa"[:63]
    r = http.patch(
        f"/api/v1/namespaces/{name}",
        params={"fieldManager": "t"},
        headers={"Content-Type": "application/apply-patch+yaml"},
        content=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    assert r.status_code == 201
    try:
        assert core.read_namespaced_service_account("default", name).metadata.name == "default"
    finally:
        core.delete_namespace(name)


def test_services_without_a_selector_or_external_names_get_no_endpoints(
    kubesim: KubeSim, core: client.CoreV1Api, kube_namespace: str
) -> None:
    ns = kube_namespace
    core.create_namespaced_service(
        ns, {"metadata": {"name": "manual"}, "spec": {"ports": [{"port": 80}]}}
    )
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com", "selector": {"a": "b"}},
        },
    )
    core.create_namespaced_service(
        ns,
        {"metadata": {"name": "empty"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}},
    )
    kubesim.settle()
    wait_for(lambda: core.list_namespaced_endpoints(ns).items, what="the selector's Endpoints")
    assert [e.metadata.name for e in core.list_namespaced_endpoints(ns).items] == ["empty"]
    assert core.read_namespaced_endpoints("empty", ns).subsets is None
    # Hand-made Endpoints for a selector-less Service are left alone.
    core.create_namespaced_endpoints(
        ns,
        {
            "metadata": {"name": "manual"},
            "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}],
        },
    )
    kubesim.settle()
    assert core.read_namespaced_endpoints("manual", ns).subsets[0].addresses[0].ip == "192.0.2.1"
    discovery = client.DiscoveryV1Api(core.api_client)
    (placeholder,) = discovery.list_namespaced_endpoint_slice(
        ns, label_selector="kubernetes.io/service-name=empty"
    ).items
    assert placeholder.endpoints is None and placeholder.ports is None
    assert placeholder.metadata.generate_name == "empty-"


def test_event_names_are_unique_and_repeats_are_counted(
    kubesim: KubeSim, kube_namespace: str
) -> None:
    recorder = kubesim.controllers.events
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": kube_namespace, "uid": "u1", "resourceVersion": "7"},
    }
    first = recorder.record(
        obj, "Normal", "R", "m1", "deployment-controller", "2026-01-01T00:00:00Z"
    )
    other = recorder.record(
        obj, "Normal", "R", "m2", "deployment-controller", "2026-01-01T00:00:00Z"
    )
    again = recorder.record(
        obj, "Normal", "R", "m1", "deployment-controller", "2026-01-01T00:01:00Z"
    )
    assert first["metadata"]["name"] != other["metadata"]["name"]
    assert first["metadata"]["name"].startswith("d.")
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert (again["count"], again["firstTimestamp"], again["lastTimestamp"]) == (
        2,
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:01:00Z",
    )
    assert first["involvedObject"] == {
        "kind": "Deployment",
        "namespace": kube_namespace,
        "name": "d",
        "uid": "u1",
        "apiVersion": "apps/v1",
        "resourceVersion": "7",
    }
    assert (first["source"], first["reportingComponent"], first["eventTime"]) == (
        {"component": "deployment-controller"},
        "deployment-controller",
        None,
    )
