"""Defaulting, as the real API server applies it on every write.

Clients compare what they sent with what they read back (rollout engines, ``kubectl diff``),
so the defaults that show up on Deployments and their pod templates matter.
"""

from __future__ import annotations

import base64
from typing import Any

from .resources import ResourceType


def _container_defaults(c: dict[str, Any]) -> None:
    image = str(c.get("image", ""))
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    c.setdefault(
        "imagePullPolicy", "IfNotPresent" if tagged and not image.endswith(":latest") else "Always"
    )
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault("timeoutSeconds", 1)
            pr.setdefault("periodSeconds", 10)
            pr.setdefault("successThreshold", 1)
            pr.setdefault("failureThreshold", 3)
            if isinstance(pr.get("httpGet"), dict):
                pr["httpGet"].setdefault("scheme", "HTTP")


def pod_spec_defaults(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                _container_defaults(c)


def apply_defaults(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Fill in server-side defaults in place."""
    spec = obj.get("spec")
    if rt.plural in ("deployments", "replicasets") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10) if rt.plural == "deployments" else None
        if rt.plural == "deployments":
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxSurge", "25%")
                ru.setdefault("maxUnavailable", "25%")
            else:
                strategy.pop("rollingUpdate", None)
        template = spec.get("template")
        if isinstance(template, dict):
            template.setdefault("metadata", {})
            if isinstance(template.get("spec"), dict):
                pod_spec_defaults(template["spec"])
    elif rt.plural == "pods" and isinstance(spec, dict):
        pod_spec_defaults(spec)
    elif rt.plural == "services":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
    elif rt.plural == "secrets":
        obj.setdefault("type", "Opaque")
        # The API server folds write-only stringData into base64 data, as a real one does.
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
    elif rt.plural == "namespaces":
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = (
            obj["metadata"]["name"]
        )
