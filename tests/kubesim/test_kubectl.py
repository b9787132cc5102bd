"""Fidelity: unmodified kubectl (the pinned one in the venv) against kubesim.

Contract mode: with ``KUBESIM_CONTRACT_KUBECONFIG`` set, every test here also runs against that
real cluster (in a throwaway namespace); otherwise the contract variants are skipped.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

from .kubectl_target import KUBECTL, Target
from .support import site_deployment

pytestmark = [pytest.mark.contract, pytest.mark.skipif(KUBECTL is None, reason="kubectl not found")]


def image_of(t: Target, name: str) -> str:
    return t.kubectl(
        "get", "deployment", name, "-o", "jsonpath={.spec.template.spec.containers[0].image}"
    ).stdout


SEED_SET_IMAGE = (
    "for deployment in $(kubectl get deployments -o jsonpath='{.items[*].metadata.name}' -l subscribie=site); "  # noqa: E501 - verbatim message
    "do kubectl --record deployment.apps/$deployment set image deployment.v1.apps/$deployment "
    "subscribie=subscribie/subscribie:v0.11; done"
)
SEED_UNDO = (
    "for deployment in $(kubectl get deployments -o jsonpath='{.items[*].metadata.name}' -l subscribie=site); "  # noqa: E501 - verbatim message
    "do kubectl rollout undo deployment $deployment; done"
)


def test_seed_loops_set_image_history_and_undo(target: Target) -> None:
    slugs = ["shop-a", "shop-b", "shop-c"]
    target.apply_manifest(*(site_deployment(s) for s in slugs))
    admin = site_deployment("admin")
    admin["metadata"]["labels"] = {"subscribie": "admin"}
    admin["spec"]["template"]["metadata"]["labels"]["subscribie"] = "admin"
    target.apply_manifest(admin)
    names = target.kubectl(
        "get", "deployments", "-l", "subscribie=site", "-o", "jsonpath={.items[*].metadata.name}"
    ).stdout
    assert names.split() == slugs
    for s in slugs:
        target.kubectl("rollout", "status", f"deployment/{s}", "--timeout=60s")

    out = target.bash(SEED_SET_IMAGE)
    assert out.stdout.count("image updated") >= len(slugs)
    for s in slugs:
        status = target.kubectl("rollout", "status", f"deployment/{s}", "--timeout=60s")
        assert "successfully rolled out" in status.stdout
        assert image_of(target, s) == "subscribie/subscribie:v0.11"
    assert image_of(target, "admin") == "subscribie/subscribie:v0.10"
    history = target.kubectl("rollout", "history", "deployment/shop-a").stdout
    assert "CHANGE-CAUSE" in history
    assert "set image deployment.v1.apps/shop-a subscribie=subscribie/subscribie:v0.11" in history
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    detail = target.kubectl("rollout", "history", "deployment/shop-a", "--revision=1").stdout
    assert "subscribie/subscribie:v0.10" in detail

    target.bash(SEED_UNDO)
    for s in slugs:
        target.kubectl("rollout", "status", f"deployment/{s}", "--timeout=60s")
        assert image_of(target, s) == "subscribie/subscribie:v0.10"
    # Undo to an explicit revision: revision 2 (v0.11) is now 2, the restored one 3.
    target.kubectl("rollout", "undo", "deployment/shop-a", "--to-revision=2")
    target.kubectl("rollout", "status", "deployment/shop-a", "--timeout=60s")
    assert image_of(target, "shop-a") == "subscribie/subscribie:v0.11"
    revs = target.kubectl(
        "get",
        "deployment",
        "shop-a",
        "-o",
        "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    ).stdout
    assert revs == "4"


def test_rollout_status_fails_on_a_broken_image(target: Target) -> None:
    target.apply_manifest(site_deployment("fragile", progress_deadline=2))
    target.kubectl("rollout", "status", "deployment/fragile", "--timeout=60s")
    target.kubectl("set", "image", "deployment/fragile", f"subscribie={target.broken_image}")
    status = target.kubectl("rollout", "status", "deployment/fragile", "--timeout=60s", check=False)
    assert status.returncode != 0
    assert 'deployment "fragile" exceeded its progress deadline' in status.stderr
    # The old pod kept serving.
    available = target.kubectl(
        "get", "deployment", "fragile", "-o", "jsonpath={.status.availableReplicas}"
    ).stdout
    assert available == "1"
    target.kubectl("rollout", "undo", "deployment/fragile")
    # The controller's first sync after the undo still reports ProgressDeadlineExceeded (at the
    # new observedGeneration: the broken pod is only being scaled down), and rollout status
    # watching from before that sync fails on it. Wait for the condition to turn True first.
    target.kubectl("wait", "deployment/fragile", "--for=condition=Progressing", "--timeout=60s")
    target.kubectl("rollout", "status", "deployment/fragile", "--timeout=60s")


def test_server_side_apply_conflicts_and_force(target: Target) -> None:
    target.apply_manifest(site_deployment("ssa"), server_side=True)
    target.kubectl("rollout", "status", "deployment/ssa", "--timeout=60s")
    # The applier owns the spec; the controller's status write leaves its own entry.
    fields = json.loads(
        target.kubectl(
            "get", "deployment", "ssa", "-o", "jsonpath={.metadata.managedFields}"
        ).stdout
    )
    assert {(f["manager"], f["operation"], f.get("subresource")) for f in fields} == {
        ("kubectl", "Apply", None),
        ("kube-controller-manager", "Update", "status"),
    }
    controller = next(f for f in fields if f["manager"] == "kube-controller-manager")
    assert "f:status" in controller["fieldsV1"] and "f:spec" not in controller["fieldsV1"]
    target.kubectl("set", "image", "deployment/ssa", "subscribie=subscribie/subscribie:v0.12")
    proc = target.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=yaml.safe_dump(site_deployment("ssa")),
        check=False,
    )
    assert proc.returncode != 0 and "conflict" in proc.stderr.lower()
    target.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        stdin=yaml.safe_dump(site_deployment("ssa")),
    )
    assert image_of(target, "ssa") == "subscribie/subscribie:v0.10"


def test_client_side_apply_updates_and_is_idempotent(target: Target) -> None:
    first = target.apply_manifest(site_deployment("csa"))
    assert "created" in first.stdout
    assert "unchanged" in target.apply_manifest(site_deployment("csa")).stdout
    changed = site_deployment("csa", image="subscribie/subscribie:v0.13")
    assert "configured" in target.apply_manifest(changed).stdout
    target.kubectl("rollout", "status", "deployment/csa", "--timeout=60s")
    assert image_of(target, "csa") == "subscribie/subscribie:v0.13"


def test_pause_resume_scale_label_delete(target: Target) -> None:
    target.apply_manifest(site_deployment("ops"), site_deployment("ops2"))
    target.kubectl("rollout", "status", "deployment/ops", "--timeout=60s")
    target.kubectl("rollout", "pause", "deployment/ops")
    target.kubectl("set", "image", "deployment/ops", "subscribie=subscribie/subscribie:v0.14")
    time.sleep(0.3)
    assert (
        len(target.kubectl("get", "rs", "-l", "subscribie-site=ops", "-o", "name").stdout.split())
        == 1
    )
    target.kubectl("rollout", "resume", "deployment/ops")
    target.kubectl("rollout", "status", "deployment/ops", "--timeout=60s")
    assert (
        len(target.kubectl("get", "rs", "-l", "subscribie-site=ops", "-o", "name").stdout.split())
        == 2
    )

    target.kubectl("scale", "deployment/ops", "--replicas=3")
    target.kubectl("rollout", "status", "deployment/ops", "--timeout=60s")
    assert (
        target.kubectl("get", "deployment", "ops", "-o", "jsonpath={.status.readyReplicas}").stdout
        == "3"
    )
    assert (
        len(target.kubectl("get", "pods", "-l", "subscribie-site=ops", "-o", "name").stdout.split())
        == 3
    )

    target.kubectl("label", "deployment", "ops2", "tier=gold")
    assert target.kubectl("get", "deployments", "-l", "tier=gold", "-o", "name").stdout.split() == [
        "deployment.apps/ops2"
    ]
    target.kubectl("delete", "deployments", "-l", "subscribie=site")
    assert target.kubectl("get", "deployments", "-o", "name").stdout.strip() == ""


def test_get_watch_streams_changes(target: Target) -> None:
    proc = subprocess.Popen(
        [
            KUBECTL or "kubectl",
            "get",
            "deployments",
            "-w",
            "--output-watch-events",
            "-o",
            "json",
            "--request-timeout=20s",
        ],
        env=target.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        target.apply_manifest(site_deployment("watched"))
        target.kubectl("delete", "deployment", "watched")
        deadline = time.monotonic() + 20
        seen = ""
        while time.monotonic() < deadline and '"type":"DELETED"' not in seen:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                break
            seen += line.replace(" ", "")
        assert '"type":"ADDED"' in seen and '"name":"watched"' in seen
        assert '"type":"DELETED"' in seen
    finally:
        proc.kill()
        proc.wait()
