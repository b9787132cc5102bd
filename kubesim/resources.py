"""The resource types kubesim serves, and their discovery metadata.

A :class:`ResourceType` is the single source of truth for URL routing, discovery documents,
error messages and object defaults; adding a type here makes it servable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # Whether ``spec`` changes bump ``metadata.generation`` (workload-style objects).
    has_generation: bool = False
    list_kind: str = field(default="", compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def key(self) -> str:
        """Store key: ``plural.group`` (``pods``, ``deployments.apps``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


TYPES: list[ResourceType] = [
    ResourceType(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        False,
        ("ns",),
        ("status",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    ResourceType(
        "", "v1", "Pod", "pods", "pod", True, ("po",), ("status",), ("all",), has_generation=True
    ),
    ResourceType(
        "",
        "v1",
        "Service",
        "services",
        "service",
        True,
        ("svc",),
        ("status",),
        ("all",),
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    ResourceType("", "v1", "Secret", "secrets", "secret", True),
    ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    ResourceType("", "v1", "Event", "events", "event", True, ("ev",)),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        True,
        ("deploy",),
        ("status", "scale"),
        ("all",),
        has_generation=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        True,
        ("rs",),
        ("status", "scale"),
        ("all",),
        has_generation=True,
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        True,
        ("ing",),
        ("status",),
        has_generation=True,
    ),
]

BY_KEY: dict[str, ResourceType] = {t.key: t for t in TYPES}
# (group, version) -> plural -> type, for URL routing.
BY_GV: dict[tuple[str, str], dict[str, ResourceType]] = {}
for _t in TYPES:
    BY_GV.setdefault((_t.group, _t.version), {})[_t.plural] = _t

NAMESPACES = BY_KEY["namespaces"]
PODS = BY_KEY["pods"]
DEPLOYMENTS = BY_KEY["deployments.apps"]
REPLICASETS = BY_KEY["replicasets.apps"]
EVENTS = BY_KEY["events"]


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    for t in TYPES:
        if t.kind == kind and t.api_version == api_version:
            return t
    return None
