"""Fidelity: unmodified kubectl (the pinned one in the venv) against kubesim.

Contract mode: with ``KUBESIM_CONTRACT_KUBECONFIG`` set, every test here also runs against that
real cluster (in a throwaway namespace); otherwise the contract variants are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kubesim import KubeSim

from .support import site_deployment

CONTRACT_ENV = "KUBESIM_CONTRACT_KUBECONFIG"


def find_kubectl() -> str | None:
    beside = Path(sys.executable).with_name("kubectl")
    return str(beside) if beside.exists() else shutil.which("kubectl")


KUBECTL = find_kubectl()
pytestmark = [pytest.mark.contract, pytest.mark.skipif(KUBECTL is None, reason="kubectl not found")]


@dataclass
class Target:
    """Where kubectl points: a kubeconfig whose current context defaults to ``namespace``."""

    kubeconfig: str
    namespace: str
    sim: KubeSim | None
    broken_image: str

    def env(self) -> dict[str, str]:
        path = f"{Path(KUBECTL or 'kubectl').parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "KUBECONFIG": self.kubeconfig, "PATH": path}

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 60, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [KUBECTL or "kubectl", *args],
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"  # noqa: E501 - verbatim message
            )
        return proc

    def bash(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["bash", "-c", script], env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, f"{script}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def apply_manifest(
        self, *docs: dict, server_side: bool = False
    ) -> subprocess.CompletedProcess[str]:
        args = ["apply", "-f", "-"] + (["--server-side"] if server_side else [])
        return self.kubectl(*args, stdin=yaml.safe_dump_all(docs))


def _namespaced_kubeconfig(source: str, namespace: str, dest: Path) -> str:
    cfg = yaml.safe_load(Path(source).read_text())
    current = cfg["current-context"]
    for ctx in cfg["contexts"]:
        if ctx["name"] == current:
            ctx["context"]["namespace"] = namespace
    dest.write_text(yaml.safe_dump(cfg))
    return str(dest)


@pytest.fixture(params=["kubesim", "contract"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    if request.param == "contract":
        source = os.environ.get(CONTRACT_ENV)
        if not source:
            pytest.skip(f"{CONTRACT_ENV} not set: no real cluster to run the contract against")
        ns = f"kubesim-contract-{uuid.uuid4().hex[:8]}"
        t = Target(
            _namespaced_kubeconfig(source, ns, tmp_path / "kc"),
            ns,
            None,
            "registry.invalid/subscribie:broken",
        )
        t.kubectl("create", "namespace", ns)
        try:
            yield t
        finally:
            t.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        return
    sim: KubeSim = request.getfixturevalue("kubesim")
    ns = request.getfixturevalue("kube_namespace")
    sim.set_fail_images(r"registry\.invalid/")
    yield Target(
        _namespaced_kubeconfig(sim.kubeconfig_path, ns, tmp_path / "kc"),
        ns,
        sim,
        "registry.invalid/subscribie:broken",
    )


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
    managers = target.kubectl(
        "get", "deployment", "ssa", "-o", "jsonpath={.metadata.managedFields[*].manager}"
    ).stdout
    assert managers.split() == ["kubectl"]
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
