"""Protobuf over HTTP with the official client, on kubesim and (``make test-real``) a real one.

Bodies are built with the protobuf library's classes for the compiled upstream schema and sent
as raw bytes through the official client's ``ApiClient``; answers asked for as protobuf only
are read with kubesim/protobuf.py and must equal the JSON answers. On the real control plane
that checks kubesim's decoder against the real API server's encoder.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kubernetes import client

from kubesim import protobuf, protobuf_schema

from . import on_target
from .support import wait_rolled_out

pytestmark = pytest.mark.contract
# The official client on kube_target (kubesim, or the real control plane in make test-real).
kube_namespace = on_target.kube_namespace
kube_api_client = on_target.kube_api_client

CORE = "k8s.io.api.core.v1"
APPS = "k8s.io.api.apps.v1"
JSON = {"Accept": "application/json"}
PROTOBUF_ONLY = {"Accept": protobuf.MEDIA_TYPE}


@pytest.fixture(scope="module")
def schema() -> protobuf.Schema:
    if protobuf_schema.schema_dir() is None:
        pytest.fail("no compiled schema: `make install` runs `python -m kubesim fetch-protobuf`")
    return protobuf.load_schema()


def call(
    api: client.ApiClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[int, str, bytes]:
    """One request through the official client; (status, content type, body)."""
    method, url, header_params, body, _ = api.param_serialize(
        method, path, header_params=dict(headers), body=body, auth_settings=["BearerToken"]
    )
    resp = api.call_api(method, url, header_params=header_params, body=body)
    data = resp.read()
    return resp.status, resp.getheader("Content-Type") or "", data


def post_protobuf(
    api: client.ApiClient, path: str, api_version: str, kind: str, message: Any
) -> tuple[int, dict[str, Any]]:
    unknown = protobuf.load_schema().message_class("k8s.io.apimachinery.pkg.runtime.Unknown")()
    unknown.typeMeta.apiVersion, unknown.typeMeta.kind = api_version, kind
    unknown.raw = message.SerializeToString()
    wire = b"k8s\x00" + unknown.SerializeToString()
    status, _, data = call(api, "POST", path, {"Content-Type": protobuf.MEDIA_TYPE, **JSON}, wire)
    return status, json.loads(data)


def test_a_protobuf_configmap_and_secret_are_stored_as_sent(
    schema: protobuf.Schema, kube_api_client: client.ApiClient, kube_namespace: str
) -> None:
    cm = schema.message_class(f"{CORE}.ConfigMap")()
    cm.metadata.name = "pb-settings"
    cm.metadata.labels["subscribie-site"] = "shop"
    cm.data["theme"] = "dark"
    cm.data["empty"] = ""
    cm.binaryData["logo"] = b"\x89PNG\x00\xff"
    status, body = post_protobuf(
        kube_api_client,
        f"/api/v1/namespaces/{kube_namespace}/configmaps",
        "v1",
        "ConfigMap",
        cm,
    )
    assert status == 201, body
    assert body["metadata"]["labels"] == {"subscribie-site": "shop"}
    read = client.CoreV1Api(kube_api_client).read_namespaced_config_map(
        "pb-settings", kube_namespace
    )
    assert read.data == {"theme": "dark", "empty": ""}
    assert read.binary_data == {"logo": base64.b64encode(b"\x89PNG\x00\xff").decode()}
    secret = schema.message_class(f"{CORE}.Secret")()
    secret.metadata.name = "pb-creds"
    secret.data["password"] = b"p@ss\x00w0rd"
    secret.type = "Opaque"
    status, body = post_protobuf(
        kube_api_client,
        f"/api/v1/namespaces/{kube_namespace}/secrets",
        "v1",
        "Secret",
        secret,
    )
    assert status == 201, body
    assert base64.b64decode(body["data"]["password"]) == b"p@ss\x00w0rd"


def test_a_protobuf_deployment_keeps_pointer_zeros_and_int_or_strings(
    schema: protobuf.Schema, kube_api_client: client.ApiClient, kube_namespace: str
) -> None:
    d = schema.message_class(f"{APPS}.Deployment")()
    d.metadata.name = "pb-web"
    d.spec.replicas = 0
    d.spec.revisionHistoryLimit = 2
    d.spec.selector.matchLabels["app"] = "pb-web"
    d.spec.template.metadata.labels["app"] = "pb-web"
    c = d.spec.template.spec.containers.add()
    c.name, c.image = "web", "nginx:1.27"
    port = c.ports.add()
    port.name, port.containerPort = "http", 8080
    c.readinessProbe.handler.httpGet.path = "/healthz"
    c.readinessProbe.handler.httpGet.port.type = 1
    c.readinessProbe.handler.httpGet.port.strVal = "http"
    c.resources.limits["cpu"].string = "250m"
    c.resources.limits["memory"].string = "64Mi"
    d.spec.template.spec.enableServiceLinks = False
    d.spec.strategy.type = "RollingUpdate"
    d.spec.strategy.rollingUpdate.maxSurge.intVal = 1  # type 0: an int
    d.spec.strategy.rollingUpdate.maxUnavailable.intVal = 0
    status, body = post_protobuf(
        kube_api_client,
        f"/apis/apps/v1/namespaces/{kube_namespace}/deployments",
        "apps/v1",
        "Deployment",
        d,
    )
    assert status == 201, body
    spec = body["spec"]
    assert spec["replicas"] == 0 and spec["revisionHistoryLimit"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = spec["template"]["spec"]
    assert pod["enableServiceLinks"] is False
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "http",
        "scheme": "HTTP",
    }
    assert container["resources"] == {"limits": {"cpu": "250m", "memory": "64Mi"}}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_protobuf_only_answers_decode_to_the_json_answers(
    kube_api_client: client.ApiClient, kube_namespace: str
) -> None:
    apps = client.AppsV1Api(kube_api_client)
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "pb-read", "labels": {"app": "pb-read"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "pb-read"}},
            "template": {
                "metadata": {"labels": {"app": "pb-read"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    apps.create_namespaced_deployment(kube_namespace, manifest)
    path = f"/apis/apps/v1/namespaces/{kube_namespace}/deployments/pb-read"
    status, ctype, wire = call(kube_api_client, "GET", path, PROTOBUF_ONLY)
    assert status == 200 and ctype == protobuf.MEDIA_TYPE and wire.startswith(b"k8s\x00")
    _, _, text = call(kube_api_client, "GET", path, JSON)
    as_json = json.loads(text)
    decoded = protobuf.decode(wire)
    if decoded["metadata"]["resourceVersion"] == as_json["metadata"]["resourceVersion"]:
        assert decoded == as_json  # managedFields, times, status and all
    else:  # the controller wrote status in between: compare what it does not touch
        assert decoded["spec"] == as_json["spec"]
        assert decoded["metadata"]["uid"] == as_json["metadata"]["uid"]
    listed = call(kube_api_client, "GET", path.rsplit("/", 1)[0], PROTOBUF_ONLY)
    items = protobuf.decode(listed[2])
    assert items["kind"] == "DeploymentList" and listed[1] == protobuf.MEDIA_TYPE
    assert [i["metadata"]["name"] for i in items["items"]] == ["pb-read"]
    status, ctype, wire = call(kube_api_client, "GET", path + "-missing", PROTOBUF_ONLY)
    assert status == 404 and ctype == protobuf.MEDIA_TYPE
    err = protobuf.decode(wire)
    assert err["kind"] == "Status" and err["reason"] == "NotFound" and err["code"] == 404
    assert err["message"] == 'deployments.apps "pb-read-missing" not found'


def test_a_protobuf_watch_streams_length_prefixed_events(
    schema: protobuf.Schema, kube_api_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "watched"}, "data": {"k": "v"}}
    )
    path = f"/api/v1/namespaces/{kube_namespace}/configmaps?watch=1&timeoutSeconds=1"
    status, ctype, stream = call(kube_api_client, "GET", path, PROTOBUF_ONLY)
    assert status == 200
    assert ctype == f"{protobuf.MEDIA_TYPE};stream=watch"
    event_cls = schema.message_class("k8s.io.apimachinery.pkg.apis.meta.v1.WatchEvent")
    events = []
    while stream:
        size = int.from_bytes(stream[:4], "big")
        event = event_cls.FromString(stream[4 : 4 + size])
        events.append((event.type, protobuf.decode(event.object.raw)))
        stream = stream[4 + size :]
    names = [(etype, obj["kind"], obj["metadata"]["name"]) for etype, obj in events]
    assert ("ADDED", "ConfigMap", "watched") in names
    (added,) = [obj for etype, obj in events if obj["metadata"]["name"] == "watched"]
    assert added["data"] == {"k": "v"}


def _list_paths(namespace: str) -> list[str]:
    from kubesim.resources import TYPES

    paths = []
    for t in TYPES:
        if t.virtual or "list" not in t.verbs:
            continue
        base = f"/apis/{t.api_version}" if t.group else "/api/v1"
        paths.append(
            f"{base}/namespaces/{namespace}/{t.plural}" if t.namespaced else f"{base}/{t.plural}"
        )
    return paths


def _comparable_list(listed: dict) -> dict:
    """A list as both encodings must agree on it. The list's own resourceVersion is dropped:
    on a real server it is etcd's revision at the moment of the read, which any write anywhere
    in the cluster (a lease renewal every few seconds) moves, so two reads of an unchanged
    list rarely share it; each item's resourceVersion still pins the items. A protobuf list
    item has no TypeMeta on the wire, and kubesim's JSON items carry apiVersion and kind (a
    real server's do not), so those are dropped too."""
    assert listed["metadata"].get("resourceVersion"), listed["metadata"]
    listed["metadata"].pop("resourceVersion")
    for item in listed.get("items", []):
        item.pop("apiVersion", None)
        item.pop("kind", None)
    return listed


def test_every_served_list_in_protobuf_decodes_to_its_json(
    kube_api_client: client.ApiClient, kube_namespace: str
) -> None:
    """Lists of every kind kubesim serves (pods with their status, nodes, events, endpoint
    slices, ...): the protobuf answer, decoded, is the JSON answer of the same resourceVersion."""
    apps = client.AppsV1Api(kube_api_client)
    apps.create_namespaced_deployment(
        kube_namespace,
        {
            "metadata": {"name": "pb-all", "labels": {"app": "pb-all"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "pb-all"}},
                "template": {
                    "metadata": {"labels": {"app": "pb-all"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
    )
    client.CoreV1Api(kube_api_client).create_namespaced_service(
        kube_namespace,
        {
            "metadata": {"name": "pb-all"},
            "spec": {"selector": {"app": "pb-all"}, "ports": [{"port": 80}]},
        },
    )
    wait_rolled_out(apps, kube_namespace, "pb-all", timeout=60)
    compared = 0
    for path in _list_paths(kube_namespace):
        for _attempt in range(5):  # a write between the two reads: read both again
            status, ctype, wire = call(kube_api_client, "GET", path, PROTOBUF_ONLY)
            assert status == 200 and ctype == protobuf.MEDIA_TYPE, (path, status, wire[:200])
            _, _, text = call(kube_api_client, "GET", path, JSON)
            decoded, as_json = (
                _comparable_list(protobuf.decode(wire)),
                _comparable_list(json.loads(text)),
            )
            if decoded == as_json:
                break
        assert decoded == as_json, path
        compared += len(as_json["items"])
    assert compared >= 8  # the Deployment, its ReplicaSet and pods, Service, endpoints, ...
