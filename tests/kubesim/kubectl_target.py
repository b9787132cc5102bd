"""The ``target`` fixture: where kubectl points, kubesim or (contract mode) a real cluster.

With ``KUBESIM_CONTRACT_KUBECONFIG`` set, every test taking ``target`` also runs against that
real cluster (in a throwaway namespace); otherwise the contract variants are skipped. The
fixture is registered for the whole package in conftest.py.
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

CONTRACT_ENV = "KUBESIM_CONTRACT_KUBECONFIG"


def find_kubectl() -> str | None:
    beside = Path(sys.executable).with_name("kubectl")
    return str(beside) if beside.exists() else shutil.which("kubectl")


KUBECTL = find_kubectl()


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


def _wait_for_default_service_account(target: Target, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = target.kubectl("get", "serviceaccount", "default", check=False)
        if got.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"namespace {target.namespace} got no default ServiceAccount in {timeout:.0f} s:\n"
                f"{got.stderr}"
            )
        time.sleep(0.2)


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
        # The service-account controller fills a new namespace asynchronously; tests that
        # ask for a token (or pods that need one) would otherwise race it.
        _wait_for_default_service_account(t)
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
