"""The resource types kubesim serves, and their discovery metadata.

A :class:`ResourceType` is the single source of truth for URL routing, discovery documents,
error messages and object defaults; adding a type here makes it servable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_COLLECTION_DELETE = ("create", "delete", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)

# Subresources that are not stored objects: (kind, verbs) as discovery lists them. ``log`` and
# the streaming ones are answered by kubesim/kubelet.py; ``scale`` is autoscaling/v1 Scale;
# anything else (``status``) is the object itself with get/patch/update.
SUBRESOURCE_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "log": ("Pod", ("get",)),
    "exec": ("PodExecOptions", ("create", "get")),
    "attach": ("PodAttachOptions", ("create", "get")),
    "portforward": ("PodPortForwardOptions", ("create", "get")),
    "token": ("TokenRequest", ("create",)),  # kubesim/authentication.py
}


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
    # Not stored: a create computes an answer (SelfSubjectAccessReview and friends).
    virtual: bool = False
    # The API server's deprecation warning (apiserver/pkg/endpoints/deprecation), sent as a
    # ``Warning: 299 - "..."`` header on every request for the type; kubectl prints it.
    deprecation: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @cached_property
    def key(self) -> str:
        """Store key: ``plural.group`` (``pods``, ``deployments.apps``); computed once."""
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
        verbs=NO_COLLECTION_DELETE,
    ),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        True,
        ("po",),
        ("status", "log", "exec", "attach", "portforward"),
        ("all",),
        has_generation=True,
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
    ResourceType("", "v1", "Node", "nodes", "node", False, ("no",), ("status",), verbs=ALL_VERBS),
    ResourceType(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        True,
        ("ep",),
        deprecation="v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice",
    ),
    ResourceType(
        "", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",), ("token",)
    ),
    ResourceType(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        True,
        ("pvc",),
        ("status",),
    ),
    ResourceType(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        False,
        ("pv",),
        ("status",),
    ),
    ResourceType(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
        True,
        ("rc",),
        ("status", "scale"),
        ("all",),
        has_generation=True,
    ),
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
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        True,
        ("ds",),
        ("status",),
        ("all",),
        has_generation=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        True,
        ("sts",),
        ("status", "scale"),
        ("all",),
        has_generation=True,
    ),
    ResourceType(
        "batch", "v1", "Job", "jobs", "job", True, (), ("status",), ("all",), has_generation=True
    ),
    ResourceType(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        True,
        ("cj",),
        ("status",),
        ("all",),
        has_generation=True,
    ),
    ResourceType(
        "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", True
    ),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        False,
        verbs=CREATE_ONLY,
        virtual=True,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        False,
        verbs=CREATE_ONLY,
        virtual=True,
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        False,
        verbs=CREATE_ONLY,
        virtual=True,
    ),
    # Stored only: no controller scales on it (kubesim has no metrics).
    ResourceType(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        ("hpa",),
        ("status",),
        ("all",),
    ),
    # RBAC objects are read by kubesim/rbac.py for every request not made by the admin; no
    # disruption controller fills a PodDisruptionBudget's status.
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", True),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", True
    ),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", False
    ),
    ResourceType(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        False,
    ),
    ResourceType(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        True,
        ("pdb",),
        ("status",),
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
NODES = BY_KEY["nodes"]
SERVICES = BY_KEY["services"]
ENDPOINTS = BY_KEY["endpoints"]
ENDPOINTSLICES = BY_KEY["endpointslices.discovery.k8s.io"]
SERVICEACCOUNTS = BY_KEY["serviceaccounts"]
CONFIGMAPS = BY_KEY["configmaps"]
LEASES = BY_KEY["leases.coordination.k8s.io"]


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    for t in TYPES:
        if t.kind == kind and t.api_version == api_version:
            return t
    return None
