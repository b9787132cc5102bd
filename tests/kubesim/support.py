"""Shared helpers for the kubesim tests (manifests and polling)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns a truthy value; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
        last = predicate()
    return last


def site_deployment(
    slug: str,
    image: str = "subscribie/subscribie:v0.10",
    replicas: int = 1,
    max_surge: Any = 1,
    max_unavailable: Any = 0,
    progress_deadline: int | None = None,
    strategy: str = "RollingUpdate",
) -> dict[str, Any]:
    """A Deployment following this project's site conventions."""
    labels = {"subscribie": "site", "subscribie-site": slug}
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"subscribie-site": slug}},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "containers": [
                    {
                        "name": "subscribie",
                        "image": image,
                        "ports": [{"containerPort": 80}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                    }
                ]
            },
        },
    }
    if strategy == "RollingUpdate":
        spec["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable},
        }
    else:
        spec["strategy"] = {"type": strategy}
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": slug, "labels": labels},
        "spec": spec,
    }


def wait_rolled_out(apps: Any, ns: str, name: str, timeout: float = 10.0) -> Any:
    """Poll until the Deployment is rolled out (``kubectl rollout status``'s test).

    Generation, spec and status come from one read, so a status written before the
    controller observed the latest spec change never counts.
    """

    def check() -> Any:
        d = apps.read_namespaced_deployment(name, ns)
        return d if rolled_out(d.status, d.metadata.generation, d.spec.replicas) else None

    return wait_for(check, timeout, what=f"{ns}/{name} rolled out")


def rolled_out(status: Any, generation: int, replicas: int) -> bool:
    """kubectl rollout status's success test, on a client-model or dict status."""
    get = (
        (lambda k: status.get(k))
        if isinstance(status, dict)
        else (lambda k: getattr(status, _snake(k)))
    )
    return (
        (get("observedGeneration") or 0) >= generation
        and (get("updatedReplicas") or 0) == replicas
        and (get("replicas") or 0) == replicas
        and (get("availableReplicas") or 0) == replicas
    )


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)
