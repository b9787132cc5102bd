"""kubesim restarts with its state kept, dropped connections, and the write journal."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from kubernetes import client, config

from kubesim import KubeSim

from .support import site_deployment, wait_rolled_out


@pytest.fixture
def own_sim():
    """A private sim: restarting it must not disturb the session's shared one."""
    with KubeSim(ready_after=0.01) as sim:
        sim.api.create(sim.api_types("namespaces"), "", {"metadata": {"name": "r"}})
        yield sim


def apps_for(sim: KubeSim) -> client.AppsV1Api:
    return client.AppsV1Api(config.new_client_from_config(sim.kubeconfig_path))


def test_restart_keeps_port_store_and_controllers_and_drops_connections(own_sim: KubeSim):
    apps = apps_for(own_sim)
    apps.create_namespaced_deployment("r", site_deployment("keep"))
    wait_rolled_out(apps, "r", "keep")
    before = apps.read_namespaced_deployment("keep", "r")
    own_sim.reset_availability()
    url = own_sim.url
    with httpx.Client(base_url=url) as http:
        assert http.get("/version").status_code == 200  # a keep-alive connection is open
        assert own_sim.restart(down_for=0.2) >= 1  # the open connection was reset
        assert own_sim.url == url  # same port
        # A client that reconnects finds the same objects.
        assert http.get("/version").status_code == 200
    after = apps.read_namespaced_deployment("keep", "r")
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.metadata.uid == before.metadata.uid
    # The controllers kept running: a change made after the restart rolls out.
    apps.patch_namespaced_deployment(
        "keep",
        "r",
        {"spec": {"template": {"spec": {"containers": [{"name": "subscribie", "image": "x:2"}]}}}},
    )
    wait_rolled_out(apps, "r", "keep")
    assert own_sim.availability("r")["r/keep"] >= 1


def test_restart_over_the_hook_answers_first_then_comes_back(own_sim: KubeSim):
    answer = httpx.post(f"{own_sim.url}/kubesim/restart", json={"downFor": 0.1})
    assert answer.status_code == 202
    for _ in range(100):
        try:
            if httpx.get(f"{own_sim.url}/version", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
    else:
        pytest.fail("kubesim did not come back after its restart")


def test_drop_fault_resets_the_connection_without_an_answer(own_sim: KubeSim):
    apps = apps_for(own_sim)
    own_sim.faults.add("list", "deployments", drop=True, count=1)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{own_sim.url}/apis/apps/v1/namespaces/r/deployments")
    assert apps.list_namespaced_deployment("r").items == []  # count=1: the next one answers
    with pytest.raises(ValueError, match="no status"):
        own_sim.faults.add("list", "deployments", drop=True, status=500)


def test_journal_tells_applied_writes_from_refused_ones(own_sim: KubeSim):
    apps = apps_for(own_sim)
    apps.create_namespaced_deployment("r", site_deployment("j"))
    own_sim.request_log.start_journal()
    patch = {
        "metadata": {"annotations": {"kubernetes.io/change-cause": "rollout #7"}},
        "spec": {"template": {"spec": {"containers": [{"name": "subscribie", "image": "x:9"}]}}},
    }
    own_sim.faults.add("patch", "deployments", status=429, count=1)
    own_sim.faults.add("patch", "deployments", after_write=True, count=1)
    for _ in range(3):
        with contextlib.suppress(client.ApiException):
            apps.patch_namespaced_deployment("j", "r", patch)
    journal = own_sim.request_log.journal()
    assert [(w.verb, w.name, w.applied) for w in journal] == [
        ("patch", "j", False),  # refused with a 429
        ("patch", "j", True),  # applied, then answered 500
        ("patch", "j", True),
    ]
    assert journal[1].images == ("x:9",) and journal[1].change_cause == "rollout #7"
    own_sim.reset_requests()
    assert own_sim.request_log.journal() == []
