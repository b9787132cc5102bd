"""Test hooks (faults, request log, availability ledger, runtime config) and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from kubesim import KubeSim

from .support import site_deployment, wait_for, wait_rolled_out

ROOT = Path(__file__).resolve().parents[2]


def test_fault_status_codes_and_retry_after(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("f1"))
    kubesim.faults.add("patch", "deployments", "f1", status=429, count=1, retry_after=3)
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("f1", kube_namespace, {"metadata": {"labels": {"a": "1"}}})
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "3"
    assert json.loads(err.value.body)["reason"] == "TooManyRequests"
    # count=1: the next attempt goes through.
    apps.patch_namespaced_deployment("f1", kube_namespace, {"metadata": {"labels": {"a": "1"}}})
    # PATCH is not idempotent, so urllib3 never retries it on its own (it does retry GETs
    # answered 429/503 with Retry-After).
    for status in (500, 503, 504, 409):
        kubesim.faults.add("patch", "deployments", "f1", status=status, count=1)
        with pytest.raises(ApiException) as e:
            apps.patch_namespaced_deployment(
                "f1", kube_namespace, {"metadata": {"labels": {"b": str(status)}}}
            )
        assert e.value.status == status
    assert "b" not in apps.read_namespaced_deployment("f1", kube_namespace).metadata.labels


def test_fault_after_write_applies_then_fails(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(kube_namespace, site_deployment("f2"))
    kubesim.faults.add("patch", "deployments", "f2", after_write=True, count=1)
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "f2", kube_namespace, {"metadata": {"labels": {"written": "yes"}}}
        )
    assert err.value.status == 500
    assert apps.read_namespaced_deployment("f2", kube_namespace).metadata.labels["written"] == "yes"


def test_fault_latency_and_clear(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    rule = kubesim.faults.add("list", "deployments", latency=0.3)
    t0 = time.monotonic()
    apps.list_namespaced_deployment(kube_namespace)
    assert time.monotonic() - t0 >= 0.3
    assert rule.fired == 1
    kubesim.faults.clear()
    t0 = time.monotonic()
    apps.list_namespaced_deployment(kube_namespace)
    assert time.monotonic() - t0 < 0.3


def test_cut_watch_streams(
    kubesim: KubeSim, kube_api_client: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api_client)
    ended = threading.Event()
    outcome: list[str] = []

    def consume() -> None:
        try:
            for _ in watch.Watch().stream(
                core.list_namespaced_config_map, kube_namespace, timeout_seconds=30
            ):
                pass
            outcome.append("ended")
        except Exception as e:  # a cut connection surfaces as a protocol error
            outcome.append(type(e).__name__)
        ended.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    # This test's own watch: a stream another test left open (kubectl's, say) must not count,
    # or the cut below can land before this one is registered.
    wait_for(
        lambda: kubesim.store.open_watches("configmaps", kube_namespace) >= 1, what="watch open"
    )
    assert kubesim.faults.cut_watches() >= 1
    assert ended.wait(5), "the watch stream should end when cut"


def test_request_log_counts_patches_per_deployment(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    for slug in ("r1", "r2"):
        apps.create_namespaced_deployment(kube_namespace, site_deployment(slug))
    kubesim.reset_requests()
    apps.patch_namespaced_deployment("r1", kube_namespace, {"metadata": {"labels": {"a": "1"}}})
    apps.patch_namespaced_deployment("r1", kube_namespace, {"metadata": {"labels": {"a": "2"}}})
    apps.patch_namespaced_deployment("r2", kube_namespace, {"metadata": {"labels": {"a": "1"}}})
    apps.list_namespaced_deployment(kube_namespace)
    log = kubesim.requests()
    assert log.per_object("patch", "deployments", kube_namespace) == {
        f"{kube_namespace}/r1": 2,
        f"{kube_namespace}/r2": 1,
    }
    assert log.count(verb="patch", resource="deployments", name="r1") == 2
    assert log.count(verb="list", resource="deployments", namespace=kube_namespace) == 1
    kubesim.reset_requests()
    assert kubesim.requests().total == 0


def test_availability_ledger_records_dips(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    apps.create_namespaced_deployment(
        kube_namespace, site_deployment("dip", max_surge=0, max_unavailable=1)
    )
    key = f"{kube_namespace}/dip"
    wait_for(
        lambda: (
            (apps.read_namespaced_deployment("dip", kube_namespace).status.available_replicas or 0)
            == 1
        ),
        what="available",
    )
    assert kubesim.availability(kube_namespace)[key] == 0  # since creation: it started unavailable
    kubesim.reset_availability([kube_namespace])
    assert kubesim.availability(kube_namespace)[key] == 1
    # maxUnavailable 1 with a single replica: the old pod goes before the new one is Ready.
    kubesim.set_ready_after(0.2)
    apps.patch_namespaced_deployment(
        "dip",
        kube_namespace,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "subscribie", "image": "img:2"}]}}
            }
        },
    )
    # Not just updatedReplicas == availableReplicas == 1: the status from before the controller
    # observed the patch says exactly that too.
    wait_rolled_out(apps, kube_namespace, "dip")
    assert kubesim.availability(kube_namespace)[key] == 0


def test_hooks_over_http(kubesim: KubeSim, kube_namespace: str) -> None:
    with httpx.Client(base_url=kubesim.url) as http:
        rule = http.post(
            "/kubesim/faults",
            json={"verb": "get", "resource": "configmaps", "status": 503, "count": 1},
        ).json()
        assert rule["status"] == 503
        r = http.get(f"/api/v1/namespaces/{kube_namespace}/configmaps/x")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert http.get(f"/api/v1/namespaces/{kube_namespace}/configmaps/x").status_code == 404
        assert http.get("/kubesim/faults").json()["faults"][0]["fired"] == 1
        assert http.delete("/kubesim/faults").status_code == 200
        assert http.get("/kubesim/faults").json()["faults"] == []
        reqs = http.get("/kubesim/requests").json()
        assert any(
            r["resource"] == "configmaps" and r["name"] == "x" and r["count"] == 2
            for r in reqs["requests"]
        )
        cfg = http.put("/kubesim/config", json={"readyAfter": 0.07, "failImages": "nope"}).json()
        assert cfg == {"readyAfter": 0.07, "failImages": "nope"}
        assert kubesim.ready_after == 0.07 and kubesim.fail_images == "nope"
        assert http.get("/kubesim/availability").json()["availability"] == kubesim.availability()
        assert http.post("/kubesim/requests/reset").status_code == 200
        assert http.get("/healthz").text == "ok"
        assert http.get("/version").json()["major"] == "1"


def test_cli_serve_prints_one_line_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim",
            "serve",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
            "--ready-after",
            "0",
            "--fail-images",
            "bad",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("kubesim: serving http://127.0.0.1:") and line.endswith(
            f"kubeconfig={kubeconfig}"
        )
        api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        assert "default" in [n.metadata.name for n in api.list_namespace().items]
        assert config.list_kube_config_contexts(str(kubeconfig))[1]["name"] == "kubesim"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)


def test_readiness_flip_makes_a_deployment_unavailable_and_back(
    kubesim: KubeSim, apps: client.AppsV1Api, kube_namespace: str
) -> None:
    core = client.CoreV1Api(apps.api_client)
    apps.create_namespaced_deployment(kube_namespace, site_deployment("flip", replicas=2))
    wait_rolled_out(apps, kube_namespace, "flip")

    def available() -> int:
        status = apps.read_namespaced_deployment("flip", kube_namespace).status
        return status.available_replicas or 0

    assert available() == 2
    pods = sorted(p.metadata.name for p in core.list_namespaced_pod(kube_namespace).items)
    assert kubesim.set_pod_ready(kube_namespace, pods[0], False)
    wait_for(lambda: available() == 1, what="one replica unavailable")
    pod = core.read_namespaced_pod(pods[0], kube_namespace)
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "ContainersNotReady")
    assert pod.status.container_statuses[0].ready is False
    # The pod is left in place (no replacement), as a real controller does.
    assert len(core.list_namespaced_pod(kube_namespace).items) == 2

    assert kubesim.set_deployment_ready(kube_namespace, "flip", False) == pods
    wait_for(lambda: available() == 0, what="deployment unavailable")
    assert kubesim.availability(kube_namespace)[f"{kube_namespace}/flip"] == 0

    with httpx.Client(base_url=kubesim.url) as http:
        r = http.put(f"/kubesim/ready/{kube_namespace}/deployments/flip", json={"ready": True})
        assert r.status_code == 200 and r.json()["pods"] == pods
        assert (
            http.put(f"/kubesim/ready/{kube_namespace}/pods/nope", json={"ready": True}).status_code
            == 404
        )
        assert (
            http.put(
                f"/kubesim/ready/{kube_namespace}/pods/{pods[0]}", json={"ready": "no"}
            ).status_code
            == 400
        )
    wait_for(lambda: available() == 2, what="available again")
