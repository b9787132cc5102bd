"""Server-side printing: ``kubectl get`` asks for a ``meta.k8s.io`` Table and prints its columns.

The kubectl tests run the unmodified kubectl from the venv and assert the headers a real
cluster prints; the HTTP tests pin the Table's JSON shape; the client tests make sure plain
JSON clients (the official Python client) never see a Table.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from kubesim import KubeSim, tables
from kubesim.errors import ApiError
from kubesim.resources import BY_KEY, ResourceType

from .kubectl_target import KUBECTL
from .support import site_deployment, wait_for, wait_rolled_out

TABLE_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,"
    "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
NEEDS_KUBECTL = pytest.mark.skipif(KUBECTL is None, reason="kubectl not found")


# -- helpers ---------------------------------------------------------------------------------------
def kubectl(sim: KubeSim, *args: str, timeout: float = 60) -> str:
    proc = subprocess.run(
        [KUBECTL or "kubectl", "--kubeconfig", sim.kubeconfig_path, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def parse_table(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """kubectl's column output -> (headers, rows as {header: cell}), by header offsets.

    Headers may hold single spaces (``NOMINATED NODE``); kubectl pads columns with 3 spaces.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    spans = [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = [name for _, name in spans]
    rows = []
    for line in lines[1:]:
        cells = {}
        for i, (start, name) in enumerate(spans):
            end = spans[i + 1][0] if i + 1 < len(spans) else None
            cells[name] = line[start:end].strip()
        rows.append(cells)
    return names, rows


def http_get(sim: KubeSim, path: str, accept: str = TABLE_ACCEPT) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(sim.url + path, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def rolled_out_deployment(
    apps: client.AppsV1Api, ns: str, name: str, replicas: int = 1
) -> client.V1Deployment:
    apps.create_namespaced_deployment(ns, site_deployment(name, replicas=replicas))
    return wait_rolled_out(apps, ns, name)


DEPLOY_HEADERS = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
WIDE_TEMPLATE = ["CONTAINERS", "IMAGES", "SELECTOR"]


# -- kubectl -------------------------------------------------------------------------------------
@NEEDS_KUBECTL
def test_kubectl_get_deployments_prints_real_columns(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    rolled_out_deployment(apps, kube_namespace, "shop", replicas=2)
    headers, rows = parse_table(kubectl(kubesim, "get", "deployments", "-n", kube_namespace))
    assert headers == DEPLOY_HEADERS
    assert len(rows) == 1
    row = rows[0]
    assert (row["NAME"], row["READY"], row["UP-TO-DATE"], row["AVAILABLE"]) == (
        "shop",
        "2/2",
        "2",
        "2",
    )
    assert re.fullmatch(r"\d+s", row["AGE"])

    # A single-object get is a one-row Table too.
    headers, rows = parse_table(kubectl(kubesim, "get", "deploy", "shop", "-n", kube_namespace))
    assert headers == DEPLOY_HEADERS
    assert [r["NAME"] for r in rows] == ["shop"]


@NEEDS_KUBECTL
def test_kubectl_wide_shows_the_new_image_after_set_image(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    rolled_out_deployment(apps, kube_namespace, "shop")
    headers, rows = parse_table(
        kubectl(kubesim, "get", "deploy", "-n", kube_namespace, "-o", "wide")
    )
    assert headers == [*DEPLOY_HEADERS, *WIDE_TEMPLATE]
    assert rows[0]["CONTAINERS"] == "subscribie"
    assert rows[0]["IMAGES"] == "subscribie/subscribie:v0.10"
    assert rows[0]["SELECTOR"] == "subscribie-site=shop"

    kubectl(
        kubesim,
        "set",
        "image",
        "deployment/shop",
        "subscribie=subscribie/subscribie:v0.11",
        "-n",
        kube_namespace,
    )
    wait_rolled_out(apps, kube_namespace, "shop")
    _, rows = parse_table(kubectl(kubesim, "get", "deploy", "-n", kube_namespace, "-o", "wide"))
    assert rows[0]["IMAGES"] == "subscribie/subscribie:v0.11"
    assert rows[0]["READY"] == "1/1"

    # Both ReplicaSets: the old one scaled to 0, the new one carrying the new image.
    headers, rows = parse_table(kubectl(kubesim, "get", "rs", "-n", kube_namespace, "-o", "wide"))
    assert headers == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", *WIDE_TEMPLATE]
    by_image = {r["IMAGES"]: r for r in rows}
    assert set(by_image) == {"subscribie/subscribie:v0.10", "subscribie/subscribie:v0.11"}
    old, new = by_image["subscribie/subscribie:v0.10"], by_image["subscribie/subscribie:v0.11"]
    assert (old["DESIRED"], old["CURRENT"], old["READY"]) == ("0", "0", "0")
    assert (new["DESIRED"], new["CURRENT"], new["READY"]) == ("1", "1", "1")
    assert new["SELECTOR"].startswith("pod-template-hash=")
    assert new["SELECTOR"].endswith(",subscribie-site=shop")
    headers, _ = parse_table(kubectl(kubesim, "get", "replicasets", "-n", kube_namespace))
    assert headers == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]


@NEEDS_KUBECTL
def test_kubectl_get_pods_ready_status_restarts(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    rolled_out_deployment(apps, kube_namespace, "shop")
    headers, rows = parse_table(kubectl(kubesim, "get", "pods", "-n", kube_namespace))
    assert headers == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(rows) == 1
    assert rows[0]["NAME"].startswith("shop-")
    assert (rows[0]["READY"], rows[0]["STATUS"], rows[0]["RESTARTS"]) == ("1/1", "Running", "0")

    headers, rows = parse_table(kubectl(kubesim, "get", "pods", "-n", kube_namespace, "-o", "wide"))
    assert headers == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED NODE",
        "READINESS GATES",
    ]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", rows[0]["IP"])
    assert rows[0]["NODE"] == "kubesim-node"
    assert rows[0]["NOMINATED NODE"] == rows[0]["READINESS GATES"] == "<none>"

    # A crash-looping container: 0/1, the waiting reason, and restarts with "(… ago)".
    kubesim.set_fail_images(r"registry\.invalid/")
    apps.create_namespaced_deployment(
        kube_namespace, site_deployment("broken", image="registry.invalid/subscribie:broken")
    )

    def broken_row() -> dict[str, str] | None:
        _, rows = parse_table(kubectl(kubesim, "get", "pods", "-n", kube_namespace))
        return next(
            (r for r in rows if r["NAME"].startswith("broken-") and r["STATUS"] != "Pending"),
            None,
        )

    row = wait_for(broken_row, what="the broken pod to start")
    assert (row["READY"], row["STATUS"]) == ("0/1", "CrashLoopBackOff")
    assert re.fullmatch(r"1 \(\d+s ago\)", row["RESTARTS"])


@NEEDS_KUBECTL
def test_kubectl_get_services_namespaces_secrets_configmaps_ingresses(
    kubesim: KubeSim, core: client.CoreV1Api, kube_namespace: str
) -> None:
    ns = kube_namespace
    core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"subscribie-site": "shop"}, "ports": [{"port": 80}]},
        },
    )
    core.create_namespaced_secret(ns, {"metadata": {"name": "creds"}, "data": {"a": "Yg=="}})
    core.create_namespaced_config_map(
        ns, {"metadata": {"name": "conf"}, "data": {"a": "1", "b": "2"}}
    )
    client.NetworkingV1Api(core.api_client).create_namespaced_ingress(
        ns,
        {
            "metadata": {"name": "shop"},
            "spec": {
                "ingressClassName": "nginx",
                "rules": [{"host": "shop.example.com"}],
                "tls": [{"hosts": ["shop.example.com"]}],
            },
        },
    )

    headers, rows = parse_table(kubectl(kubesim, "get", "svc", "-n", ns, "-o", "wide"))
    assert headers == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    svc = rows[0]
    assert (svc["NAME"], svc["TYPE"], svc["EXTERNAL-IP"], svc["PORT(S)"]) == (
        "web",
        "ClusterIP",
        "<none>",
        "80/TCP",
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", svc["CLUSTER-IP"])
    assert svc["SELECTOR"] == "subscribie-site=shop"

    headers, rows = parse_table(kubectl(kubesim, "get", "ns"))
    assert headers == ["NAME", "STATUS", "AGE"]
    assert {"NAME": ns, "STATUS": "Active"}.items() <= next(
        r for r in rows if r["NAME"] == ns
    ).items()
    assert {"default", "kube-system"} <= {r["NAME"] for r in rows}

    headers, rows = parse_table(kubectl(kubesim, "get", "secrets", "-n", ns))
    assert headers == ["NAME", "TYPE", "DATA", "AGE"]
    assert (rows[0]["NAME"], rows[0]["TYPE"], rows[0]["DATA"]) == ("creds", "Opaque", "1")

    headers, rows = parse_table(kubectl(kubesim, "get", "configmaps", "-n", ns))
    assert headers == ["NAME", "DATA", "AGE"]
    assert (rows[0]["NAME"], rows[0]["DATA"]) == ("conf", "2")

    headers, rows = parse_table(kubectl(kubesim, "get", "ingress", "-n", ns))
    assert headers == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    ing = rows[0]
    assert (ing["NAME"], ing["CLASS"], ing["HOSTS"], ing["ADDRESS"], ing["PORTS"]) == (
        "shop",
        "nginx",
        "shop.example.com",
        "",
        "80, 443",
    )


@NEEDS_KUBECTL
def test_kubectl_all_namespaces_sort_by_and_labels(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    rolled_out_deployment(apps, kube_namespace, "shop-b")
    rolled_out_deployment(apps, kube_namespace, "shop-a")
    # -A: kubectl adds NAMESPACE from each row's PartialObjectMetadata.
    headers, rows = parse_table(kubectl(kubesim, "get", "deploy", "-A"))
    assert headers == ["NAMESPACE", *DEPLOY_HEADERS]
    mine = [r for r in rows if r["NAMESPACE"] == kube_namespace]
    assert [r["NAME"] for r in mine] == ["shop-a", "shop-b"]
    assert all(r["READY"] == "1/1" for r in mine)
    # --sort-by asks for includeObject=Object and sorts on the full objects.
    _, rows = parse_table(
        kubectl(kubesim, "get", "deploy", "-n", kube_namespace, "--sort-by=.metadata.uid")
    )
    uids = {
        d.metadata.name: d.metadata.uid
        for d in apps.list_namespaced_deployment(kube_namespace).items
    }
    assert [r["NAME"] for r in rows] == sorted(uids, key=uids.__getitem__)
    # --show-labels / -L read labels from the row objects.
    headers, rows = parse_table(
        kubectl(kubesim, "get", "deploy", "shop-a", "-n", kube_namespace, "-L", "subscribie-site")
    )
    assert headers == [*DEPLOY_HEADERS, "SUBSCRIBIE-SITE"]
    assert rows[0]["SUBSCRIBIE-SITE"] == "shop-a"


@NEEDS_KUBECTL
def test_kubectl_get_watch_prints_table_rows(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    rolled_out_deployment(apps, kube_namespace, "shop")
    proc = subprocess.Popen(
        [
            *(KUBECTL or "kubectl", "--kubeconfig", kubesim.kubeconfig_path),
            *("get", "deploy", "-w", "-n", kube_namespace),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # A hung kubectl must fail the test, not block readline() forever.
    guard = threading.Timer(30, proc.kill)
    guard.start()
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split() == DEPLOY_HEADERS
        assert proc.stdout.readline().split()[:4] == ["shop", "1/1", "1", "1"]
        apps.patch_namespaced_deployment_scale("shop", kube_namespace, {"spec": {"replicas": 3}})
        deadline = time.monotonic() + 15
        seen = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line.split())
            if seen[-1][:2] == ["shop", "3/3"]:
                break
        assert seen and seen[-1][:4] == ["shop", "3/3", "3", "3"], seen
        # Watch events reuse the first header: no header line is printed again.
        assert all(cells[0] == "shop" for cells in seen)
    finally:
        guard.cancel()
        proc.kill()
        proc.communicate()


# -- the Table over HTTP -------------------------------------------------------------------------
def test_table_json_shape(kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str) -> None:
    ns = kube_namespace
    dep = rolled_out_deployment(apps, ns, "shop")
    code, doc = http_get(kubesim, f"/apis/apps/v1/namespaces/{ns}/deployments")
    assert code == 200
    assert (doc["kind"], doc["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert doc["metadata"]["resourceVersion"].isdigit()
    cols = doc["columnDefinitions"]
    assert [(c["name"], c["type"], c["priority"]) for c in cols] == [
        ("Name", "string", 0),
        ("Ready", "string", 0),
        ("Up-to-date", "string", 0),
        ("Available", "string", 0),
        ("Age", "string", 0),
        ("Containers", "string", 1),
        ("Images", "string", 1),
        ("Selector", "string", 1),
    ]
    assert cols[0]["format"] == "name"
    assert all(set(c) == {"name", "type", "format", "description", "priority"} for c in cols)
    assert all(c["description"] for c in cols)
    (row,) = doc["rows"]
    name, ready, updated, available, age, containers, images, selector = row["cells"]
    assert (name, ready, updated, available) == ("shop", "1/1", 1, 1)
    assert re.fullmatch(r"\d+s", age)
    assert (containers, images, selector) == (
        "subscribie",
        "subscribie/subscribie:v0.10",
        "subscribie-site=shop",
    )
    # Default includeObject=Metadata: the row object is PartialObjectMetadata.
    obj = row["object"]
    assert (obj["kind"], obj["apiVersion"]) == ("PartialObjectMetadata", "meta.k8s.io/v1")
    assert obj["metadata"]["name"] == "shop"
    assert obj["metadata"]["namespace"] == ns
    assert obj["metadata"]["uid"] == dep.metadata.uid
    assert set(obj) == {"kind", "apiVersion", "metadata"}

    _, doc = http_get(kubesim, f"/apis/apps/v1/namespaces/{ns}/deployments?includeObject=Object")
    full = doc["rows"][0]["object"]
    assert (full["kind"], full["apiVersion"]) == ("Deployment", "apps/v1")
    assert full["spec"]["template"]["spec"]["containers"][0]["name"] == "subscribie"

    _, doc = http_get(kubesim, f"/apis/apps/v1/namespaces/{ns}/deployments?includeObject=None")
    assert doc["rows"][0]["object"] is None

    code, err = http_get(kubesim, f"/apis/apps/v1/namespaces/{ns}/deployments?includeObject=Bogus")
    assert code == 400
    assert err["kind"] == "Status" and "includeObject" in err["message"]

    # A single get: one row, the object's resourceVersion.
    _, doc = http_get(kubesim, f"/apis/apps/v1/namespaces/{ns}/deployments/shop")
    assert doc["kind"] == "Table" and len(doc["rows"]) == 1
    current = apps.read_namespaced_deployment("shop", ns)
    assert doc["metadata"]["resourceVersion"] == current.metadata.resource_version

    # v1beta1 only: the Table (and its PartialObjectMetadata) in that version.
    _, doc = http_get(
        kubesim,
        f"/apis/apps/v1/namespaces/{ns}/deployments",
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
    )
    assert doc["apiVersion"] == "meta.k8s.io/v1beta1"
    assert doc["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"

    # No Table asked for: the plain list, unchanged.
    for accept in ("application/json", "application/json, */*", "*/*"):
        _, doc = http_get(kubesim, f"/apis/apps/v1/namespaces/{ns}/deployments", accept)
        assert doc["kind"] == "DeploymentList"
        assert doc["items"][0]["metadata"]["name"] == "shop"


def test_table_pagination_and_default_convertor(
    kubesim: KubeSim, core: client.CoreV1Api, kube_namespace: str
) -> None:
    ns = kube_namespace
    for i in range(3):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{i}"}, "data": {"k": "v"}})
    _, page = http_get(kubesim, f"/api/v1/namespaces/{ns}/configmaps?limit=2")
    assert [r["cells"][0] for r in page["rows"]] == ["cm-0", "cm-1"]
    assert page["metadata"]["continue"]
    assert page["metadata"]["remainingItemCount"] == 2  # cm-2 and kube-root-ca.crt
    token = page["metadata"]["continue"]
    _, rest = http_get(kubesim, f"/api/v1/namespaces/{ns}/configmaps?limit=2&continue={token}")
    assert [r["cells"][0] for r in rest["rows"]] == ["cm-2", "kube-root-ca.crt"]
    assert "continue" not in rest["metadata"]

    # Events: the real printer's LAST SEEN/TYPE/REASON/OBJECT/MESSAGE (the rest are wide).
    core.create_namespaced_event(
        ns,
        {
            "metadata": {"name": "ev1"},
            "involvedObject": {"kind": "Pod", "name": "p1", "namespace": ns},
            "reason": "Pulled",
            "type": "Normal",
            "message": "pulled ",
            "lastTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    _, doc = http_get(kubesim, f"/api/v1/namespaces/{ns}/events")
    names = [c["name"] for c in doc["columnDefinitions"] if c["priority"] == 0]
    assert names == ["Last Seen", "Type", "Reason", "Object", "Message"]
    cells = dict(
        zip([c["name"] for c in doc["columnDefinitions"]], doc["rows"][0]["cells"], strict=True)
    )
    assert (cells["Type"], cells["Reason"], cells["Object"], cells["Message"]) == (
        "Normal",
        "Pulled",
        "pod/p1",
        "pulled",
    )


def test_table_watch_events(kubesim: KubeSim, core: client.CoreV1Api, kube_namespace: str) -> None:
    """A Table watch: each event's object is a one-row Table; only the first has columns."""
    ns = kube_namespace
    core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}, "data": {"k": "v"}})
    req = urllib.request.Request(
        f"{kubesim.url}/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=2"
        "&fieldSelector=metadata.name%3Da",  # not the namespace's kube-root-ca.crt
        headers={"Accept": TABLE_ACCEPT},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        first = json.loads(resp.readline())
        core.patch_namespaced_config_map("a", ns, {"data": {"k": "v", "k2": "v2"}})
        second = json.loads(resp.readline())
    assert first["type"] == "ADDED"
    assert first["object"]["kind"] == "Table"
    assert [c["name"] for c in first["object"]["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert first["object"]["rows"][0]["cells"][:2] == ["a", 1]
    assert first["object"]["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert second["type"] == "MODIFIED"
    assert second["object"]["columnDefinitions"] is None
    assert second["object"]["rows"][0]["cells"][:2] == ["a", 2]
    rv = second["object"]["rows"][0]["object"]["metadata"]["resourceVersion"]
    assert second["object"]["metadata"]["resourceVersion"] == rv


def test_plain_json_clients_are_unaffected(
    apps: client.AppsV1Api, core: client.CoreV1Api, kube_namespace: str
) -> None:
    rolled_out_deployment(apps, kube_namespace, "shop")
    listed = apps.list_namespaced_deployment(kube_namespace)
    assert [d.metadata.name for d in listed.items] == ["shop"]
    assert listed.items[0].spec.template.spec.containers[0].image == "subscribie/subscribie:v0.10"
    got = apps.read_namespaced_deployment("shop", kube_namespace)
    assert got.status.ready_replicas == 1
    # The raw body the client decoded (it sends Accept: application/json, no Table).
    raw = apps.list_namespaced_deployment(kube_namespace, _preload_content=False)
    assert json.loads(raw.data)["kind"] == "DeploymentList"
    pods = core.list_namespaced_pod(kube_namespace)
    assert pods.items and all(p.status.phase == "Running" for p in pods.items)


# -- pure formatting -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (185, "3m5s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 61, "3h1m"),
        (47 * 3600, "47h"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400 + 5 * 86400, "3y5d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert tables.human_duration(seconds) == text


def test_requested_table_negotiation() -> None:
    assert tables.requested_table(TABLE_ACCEPT) == "meta.k8s.io/v1"
    assert tables.requested_table(None) is None
    assert tables.requested_table("application/json") is None
    assert tables.requested_table("application/json, */*") is None
    assert (
        tables.requested_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io")
        == "meta.k8s.io/v1beta1"
    )
    # An unserved Table version is skipped; a plain clause first wins; with no acceptable
    # clause at all a real server answers 406 (checked against kube-apiserver v1.37.2).
    for unacceptable in (
        "application/json;as=Table;v=v9;g=meta.k8s.io",
        "application/json;as=Table;v=v1",  # no group
        "application/json;as=Foo;g=meta.k8s.io;v=v1",
        "text/html",
    ):
        with pytest.raises(ApiError) as err:
            tables.requested_table(unacceptable)
        assert err.value.code == 406 and err.value.reason == "NotAcceptable"
        assert err.value.message == (
            "only the following media types are accepted: application/json, application/yaml, "
            "application/vnd.kubernetes.protobuf"
        )
    assert tables.requested_table("application/json;as=Table;v=v9;g=meta.k8s.io, */*") is None
    assert tables.requested_table("application/yaml") is None
    assert (
        tables.requested_table("application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io")
        is None
    )
    assert (
        tables.requested_table("application/json,application/json;as=Table;v=v1;g=meta.k8s.io")
        is None
    )
    assert (
        tables.requested_table(
            "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,"
            "application/json;as=Table;v=v1;g=meta.k8s.io"
        )
        == "meta.k8s.io/v1"
    )


def test_selectors_and_default_table() -> None:
    sel = {
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "c", "operator": "In", "values": ["y", "x"]},
            {"key": "d", "operator": "DoesNotExist"},
        ],
    }
    assert tables.selector_string(sel) == "a=1,b=2,c in (x,y),!d"
    assert tables.format_label_selector({}) == "<none>"
    assert tables.format_labels({"z": "1", "a": "2"}) == "a=2,z=1"
    assert tables.format_labels(None) == "<none>"

    now = datetime(2030, 1, 1, tzinfo=UTC)
    created = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj = {"metadata": {"name": "x", "creationTimestamp": created, "resourceVersion": "7"}}
    fake = ResourceType("example.com", "v1", "Widget", "widgets", "widget", True)  # no printer
    doc = tables.object_table(fake, obj, now=now)
    assert [(c["name"], c["type"]) for c in doc["columnDefinitions"]] == [
        ("Name", "string"),
        ("Created At", "date"),
    ]
    assert doc["rows"][0]["cells"] == ["x", created]
    assert doc["metadata"] == {"resourceVersion": "7"}
    doc = tables.object_table(BY_KEY["namespaces"], {**obj, "status": {"phase": "Active"}}, now=now)
    assert doc["rows"][0]["cells"] == ["x", "Active", "5m"]


def test_pod_printer_states() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    ts = (now - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    pods = BY_KEY["pods"]

    def cells(status: dict[str, Any], spec: dict[str, Any] | None = None, **meta: Any) -> list:
        obj = {
            "metadata": {"name": "p", "creationTimestamp": ts, **meta},
            "spec": spec or {"containers": [{"name": "c"}]},
            "status": status,
        }
        return tables.table(pods, [obj], now=now)["rows"][0]["cells"]

    assert cells({"phase": "Pending"})[:4] == ["p", "0/1", "Pending", "0"]
    assert cells(
        {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "c",
                    "ready": False,
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts}},
                }
            ],
        }
    )[:4] == ["p", "0/1", "CrashLoopBackOff", "3 (30s ago)"]
    assert cells({"phase": "Running"}, deletionTimestamp=ts)[2] == "Terminating"
    init = {
        "initContainers": [{"name": "i"}],
        "containers": [{"name": "c"}],
    }
    assert (
        cells(
            {
                "phase": "Pending",
                "initContainerStatuses": [{"name": "i", "state": {"running": {}}}],
            },
            init,
        )[2]
        == "Init:0/1"
    )
    done = tables.table(
        pods,
        [
            {
                "metadata": {"name": "p", "creationTimestamp": ts},
                "spec": {},
                "status": {"phase": "Succeeded"},
            }
        ],
        now=now,
    )["rows"][0]
    assert done["conditions"][0]["reason"] == "Succeeded"
