"""Build the Kubernetes objects of one Subscribie site as plain dicts.

Pure module: plain data in, plain data out. No ``kubernetes`` import, no Django, no clock.

Invariants
----------
* Output is a fresh, JSON-serialisable dict on every call (no shared mutable state), and the
  same inputs always give equal output, so server-side apply is a no-op when nothing changed.
* The *shape* of every object is fixed by this module. User-supplied text (title, owner email,
  theme, custom domain) only ever becomes a leaf string in an allow-listed field (an env value,
  an Ingress host); it never becomes a key, a name, a label, or YAML text.
* Every object carries the three site labels; the selector uses only ``subscribie-site``.
* ``site_manifests`` never includes the Secret: it is created once, and a redeploy must never
  rotate the site's generated secrets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHANGE_CAUSE_ANNOTATION",
    "CONTAINER_NAME",
    "CONTAINER_PORT",
    "FIELD_MANAGER",
    "MANAGED_BY",
    "SERVICE_PORT",
    "SITE_LABEL",
    "SITE_LABEL_VALUE",
    "SITE_NAME_LABEL",
    "ClusterSettings",
    "SiteSpec",
    "deployment_manifest",
    "ingress_hosts",
    "ingress_manifest",
    "secret_manifest",
    "secret_name",
    "selector_labels",
    "service_manifest",
    "site_host",
    "site_labels",
    "site_manifests",
    "tls_secret_name",
]

# Container name is part of the operator contract: `kubectl set image deployment/<slug>
# subscribie=<image>` must keep working.
CONTAINER_NAME = "subscribie"
FIELD_MANAGER = "subscribie-admin"
SITE_LABEL = "subscribie"
SITE_LABEL_VALUE = "site"
SITE_NAME_LABEL = "subscribie-site"
MANAGED_BY: tuple[str, str] = ("app.kubernetes.io/managed-by", "subscribie-admin")
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"

CONTAINER_PORT = 8080  # unprivileged: the pod runs as a non-root user
CONTAINER_PORT_NAME = "http"
SERVICE_PORT = 80
RUN_AS_ID = 1000

# Object names become DNS labels (Service names are DNS-1035), so the slug must be one.
_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# Keys of the generated Secret become environment variable names through envFrom; Kubernetes
# silently skips keys that are not valid names, so refuse them here instead.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class SiteSpec:
    """What one site should look like. Built from a validated signup plus the fleet's image.

    ``custom_domain`` is only ever a *verified* domain (ownership proven); None otherwise.
    """

    slug: str
    title: str
    owner_email: str
    image: str
    theme_name: str
    theme_colour: str
    custom_domain: str | None = None
    replicas: int = 1

    def __post_init__(self) -> None:
        # Only structural fields are checked: they become object names and counts, where a bad
        # value would change the shape of what we apply. Text fields were validated upstream
        # and are only ever leaf values here.
        if not (_DNS_1035_LABEL.fullmatch(self.slug) and len(self.slug) <= 63):
            raise ValueError(f"slug {self.slug!r} is not a DNS-1035 label")
        if not isinstance(self.replicas, int) or isinstance(self.replicas, bool):
            raise ValueError("replicas must be an integer")
        if self.replicas < 0:
            raise ValueError("replicas must not be negative")
        if not self.image or any(ch.isspace() for ch in self.image):
            raise ValueError(f"image {self.image!r} must be non-empty without whitespace")


@dataclass(frozen=True)
class ClusterSettings:
    """Fleet-wide settings that shape every site's objects."""

    namespace: str
    base_domain: str
    progress_deadline_seconds: int
    # Small on purpose: Kubernetes history is only a cache; our database is the rollout history.
    revision_history_limit: int = 3

    def __post_init__(self) -> None:
        if self.progress_deadline_seconds <= 0:
            raise ValueError("progress_deadline_seconds must be positive")
        if self.revision_history_limit < 0:
            raise ValueError("revision_history_limit must not be negative")


def site_labels(slug: str) -> dict[str, str]:
    """The three labels every object of a site carries."""
    return {
        SITE_LABEL: SITE_LABEL_VALUE,
        SITE_NAME_LABEL: slug,
        MANAGED_BY[0]: MANAGED_BY[1],
    }


def selector_labels(slug: str) -> dict[str, str]:
    """The selector of a site: one label, as a Deployment's selector is immutable."""
    return {SITE_NAME_LABEL: slug}


def secret_name(slug: str) -> str:
    return f"{slug}-secrets"


def tls_secret_name(slug: str) -> str:
    return f"{slug}-tls"


def site_host(slug: str, base_domain: str) -> str:
    return f"{slug}.{base_domain}"


def _metadata(name: str, spec: SiteSpec, settings: ClusterSettings) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "labels": site_labels(spec.slug)}


def deployment_manifest(
    spec: SiteSpec, settings: ClusterSettings, *, change_cause: str
) -> dict[str, Any]:
    """The site's Deployment: rolling updates with no loss of capacity, restricted pod security."""
    metadata = _metadata(spec.slug, spec, settings)
    metadata["annotations"] = {CHANGE_CAUSE_ANNOTATION: change_cause}
    env = [
        {"name": "SITE_SLUG", "value": spec.slug},
        {"name": "SITE_TITLE", "value": spec.title},
        {"name": "SITE_OWNER_EMAIL", "value": spec.owner_email},
        {"name": "SITE_THEME", "value": spec.theme_name},
        {"name": "SITE_THEME_COLOUR", "value": spec.theme_colour},
        {"name": "SITE_URL", "value": f"https://{site_host(spec.slug, settings.base_domain)}"},
    ]
    container = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "ports": [
            {"name": CONTAINER_PORT_NAME, "containerPort": CONTAINER_PORT, "protocol": "TCP"}
        ],
        "env": env,
        "envFrom": [{"secretRef": {"name": secret_name(spec.slug)}}],
        # Readiness gates both Service traffic and the rollout (maxUnavailable 0 waits on it).
        # No liveness probe: restarting a slow site on a failed "/" makes an outage worse.
        "readinessProbe": {
            "httpGet": {"path": "/", "port": CONTAINER_PORT_NAME},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        # The root filesystem is read-only; the app still needs somewhere for temp files.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": settings.revision_history_limit,
            "progressDeadlineSeconds": settings.progress_deadline_seconds,
            "selector": {"matchLabels": selector_labels(spec.slug)},
            # Surge one new pod and never drop below the desired count: the site stays online.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": site_labels(spec.slug)},
                "spec": {
                    # Service links would inject every Service of the namespace as env vars:
                    # thousands of sites share one namespace.
                    "enableServiceLinks": False,
                    # Sites never talk to the Kubernetes API.
                    "automountServiceAccountToken": False,
                    # Pod Security Standard "restricted".
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_ID,
                        "runAsGroup": RUN_AS_ID,
                        "fsGroup": RUN_AS_ID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def service_manifest(spec: SiteSpec, settings: ClusterSettings) -> dict[str, Any]:
    """ClusterIP Service on port 80 to the container's named ``http`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec.slug, spec, settings),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(spec.slug),
            "ports": [
                {
                    "name": CONTAINER_PORT_NAME,
                    "port": SERVICE_PORT,
                    "targetPort": CONTAINER_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def ingress_hosts(spec: SiteSpec, settings: ClusterSettings) -> list[str]:
    """Platform host first, then the verified custom domain (if any and different)."""
    hosts = [site_host(spec.slug, settings.base_domain)]
    if spec.custom_domain and spec.custom_domain not in hosts:
        hosts.append(spec.custom_domain)
    return hosts


def ingress_manifest(spec: SiteSpec, settings: ClusterSettings) -> dict[str, Any]:
    """Ingress routing every host of the site to its Service, with one TLS entry for all."""
    hosts = ingress_hosts(spec, settings)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(spec.slug, spec, settings),
        "spec": {
            "tls": [{"hosts": list(hosts), "secretName": tls_secret_name(spec.slug)}],
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": spec.slug,
                                        "port": {"number": SERVICE_PORT},
                                    }
                                },
                            }
                        ]
                    },
                }
                for host in hosts
            ],
        },
    }


def secret_manifest(
    spec: SiteSpec, settings: ClusterSettings, *, values: dict[str, str]
) -> dict[str, Any]:
    """The site's generated secrets (Opaque, ``stringData``).

    ``values`` are generated by the caller and go straight to the cluster; they are never
    stored in the database (only ``secret_name(slug)`` is).
    """
    for key, value in values.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise ValueError(f"secret key {key!r} is not a valid environment variable name")
        if not isinstance(value, str):
            raise ValueError(f"secret value for {key!r} must be a string")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(secret_name(spec.slug), spec, settings),
        "type": "Opaque",
        # Sorted so equal inputs give byte-identical objects regardless of dict build order.
        "stringData": dict(sorted(values.items())),
    }


def site_manifests(
    spec: SiteSpec, settings: ClusterSettings, *, change_cause: str
) -> list[dict[str, Any]]:
    """Deployment, Service and Ingress, in apply order. Never the Secret (see module doc)."""
    return [
        deployment_manifest(spec, settings, change_cause=change_cause),
        service_manifest(spec, settings),
        ingress_manifest(spec, settings),
    ]
