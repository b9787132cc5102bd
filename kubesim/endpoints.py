"""The endpoints and endpointslice controllers: Services with a selector get their pods.

For every Service with a ``spec.selector`` (not ``ExternalName``), as kube-controller-manager's
``endpoint-controller`` (``pkg/controller/endpoint``) and ``endpointslice-controller``
(``k8s.io/endpointslice``) maintain them:

* an Endpoints object named after the Service, with the Service's labels plus
  ``endpoints.kubernetes.io/managed-by: endpoint-controller``; one subset per distinct port
  set, ready pods under ``addresses`` and unready ones under ``notReadyAddresses``, each with
  ``ip``, ``nodeName`` and a ``targetRef`` to the pod; no ``subsets`` when no pod qualifies;
* one EndpointSlice ``<service>-<random>`` (``generateName``), owned by the Service (so it goes
  when the Service goes), labelled ``kubernetes.io/service-name`` and
  ``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io``, addressType
  IPv4, an endpoint per pod with ``ready``/``serving``/``terminating`` conditions; a Service
  with no pods keeps one placeholder slice with no endpoints and no ports.

A pod qualifies (``ShouldPodBeInEndpoints``) once it has an IP and while it is neither Succeeded
nor Failed; a port whose ``targetPort`` names no container port of the pod is skipped for it
(``FindPort``). A real controller splits slices at 100 endpoints and by port set; kubesim keeps
one slice (its services have a handful of pods each).

Cost: pod events only touch Services of their namespace whose selector can match (an index of
selector label pairs), membership is kept incrementally, and a Service is re-synced at most
once per controller loop however many of its pods changed; namespaces without Services cost a
dict lookup per pod event.
"""

from __future__ import annotations

from typing import Any

from .api import Api, now_iso, random_suffix
from .errors import ApiError
from .resources import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES
from .store import Obj

Key = tuple[str, str]  # (namespace, service name)
_PODS, _SERVICES, _ENDPOINTS, _SLICES = PODS.key, SERVICES.key, ENDPOINTS.key, ENDPOINTSLICES.key

MANAGED_BY = "endpoints.kubernetes.io/managed-by"
ENDPOINT_CONTROLLER = "endpoint-controller"
SLICE_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
SERVICE_NAME = "kubernetes.io/service-name"
HEADLESS = "service.kubernetes.io/headless"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def _selector(svc: Obj) -> dict[str, str] | None:
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return None
    sel = spec.get("selector")
    return {str(k): str(v) for k, v in sel.items()} if isinstance(sel, dict) and sel else None


def _matches(selector: dict[str, str], labels: dict[str, Any] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


def _find_port(pod: Obj, port: dict[str, Any]) -> int | None:
    """``FindPort``: a numeric targetPort as is, a named one looked up in the pod's containers."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or ():
        for cp in c.get("ports") or ():
            if cp.get("name") == target and cp.get("protocol", "TCP") == port.get(
                "protocol", "TCP"
            ):
                return int(cp.get("containerPort", 0))
    return None


class EndpointsController:
    """Owned by :class:`kubesim.controllers.Controllers`, which runs :meth:`process`."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.store = api.store
        self._selectors: dict[Key, dict[str, str]] = {}
        self._index: dict[tuple[str, str, str], set[str]] = {}  # (ns, key, value) -> services
        self._per_ns: dict[str, int] = {}
        self._members: dict[Key, set[str]] = {}
        self._rescan: set[Key] = set()
        self._slices: dict[Key, str] = {}
        self.dirty: set[Key] = set()
        self.store.listeners.append(self._on_event)

    # -- event intake (under the store lock, in writer threads): record work only -------------
    def _on_event(self, type_key: str, etype: str, obj: Obj, old: Obj | None) -> None:
        if type_key == _PODS:
            meta = obj["metadata"]
            ns = meta.get("namespace", "")
            if not self._per_ns.get(ns):
                return
            name = meta["name"]
            labels = meta.get("labels") or {}
            old_labels = (old["metadata"].get("labels") or {}) if old is not None else {}
            candidates: set[str] = set()
            for lab in (labels, old_labels) if old_labels is not labels else (labels,):
                for k, v in lab.items():
                    candidates |= self._index.get((ns, k, v), set())
            for svc in candidates:
                key = (ns, svc)
                sel = self._selectors.get(key)
                if sel is None:
                    continue
                now_in = etype != "DELETED" and _matches(sel, labels)
                members = self._members.setdefault(key, set())
                if now_in:
                    members.add(name)
                    self.dirty.add(key)
                elif name in members:
                    members.discard(name)
                    self.dirty.add(key)
        elif type_key == _SERVICES:
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            self._unindex(key)
            if etype != "DELETED":
                sel = _selector(obj)
                if sel is not None:
                    self._selectors[key] = sel
                    for k, v in sel.items():
                        self._index.setdefault((key[0], k, v), set()).add(key[1])
                    self._per_ns[key[0]] = self._per_ns.get(key[0], 0) + 1
                    old_sel = _selector(old) if old is not None else None
                    if old_sel != sel or key not in self._members:
                        self._rescan.add(key)
            self.dirty.add(key)
        elif type_key in (_ENDPOINTS, _SLICES) and etype == "DELETED":
            meta = obj["metadata"]
            ns = meta.get("namespace", "")
            svc = (
                meta["name"]
                if type_key == _ENDPOINTS
                else (meta.get("labels") or {}).get(SERVICE_NAME)
            )
            if svc and (ns, svc) in self._selectors:
                self.dirty.add((ns, svc))

    def _unindex(self, key: Key) -> None:
        sel = self._selectors.pop(key, None)
        if sel is None:
            return
        for k, v in sel.items():
            names = self._index.get((key[0], k, v))
            if names is not None:
                names.discard(key[1])
                if not names:
                    del self._index[(key[0], k, v)]
        self._per_ns[key[0]] -= 1
        if not self._per_ns[key[0]]:
            del self._per_ns[key[0]]

    # -- syncing (controller thread) -----------------------------------------------------------
    def process(self) -> None:
        with self.store.lock:
            batch, self.dirty = self.dirty, set()
        for key in sorted(batch):
            try:
                with self.store.lock:
                    self.sync(*key)
            except ApiError:
                pass  # the namespace went away underneath us

    def sync(self, ns: str, name: str) -> None:
        key = (ns, name)
        svc = self.store.get(SERVICES.key, ns, name)
        sel = self._selectors.get(key)
        if svc is None or sel is None:
            self._members.pop(key, None)
            self._slices.pop(key, None)
            self._rescan.discard(key)
            ep = self.store.get(ENDPOINTS.key, ns, name)
            if svc is None and ep is not None:
                self.store.remove(ENDPOINTS.key, ns, name)
            return
        if key in self._rescan:
            self._rescan.discard(key)
            self._members[key] = {
                p["metadata"]["name"]
                for p in self.store.iter(PODS.key, ns)
                if _matches(sel, p["metadata"].get("labels"))
            }
        pods = [
            p
            for p in (self.store.get(PODS.key, ns, n) for n in sorted(self._members.get(key, ())))
            if p is not None
            and (p.get("status") or {}).get("podIP")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        self._sync_endpoints(svc, pods)
        self._sync_slice(svc, pods)

    def _labels(self, svc: Obj, extra: dict[str, str]) -> dict[str, str]:
        labels = dict(svc["metadata"].get("labels") or {})
        if (svc.get("spec") or {}).get("clusterIP") == "None":
            labels[HEADLESS] = ""
        labels.update(extra)
        return labels

    def _sync_endpoints(self, svc: Obj, pods: list[Obj]) -> None:
        meta = svc["metadata"]
        ns, name = meta["namespace"], meta["name"]
        ports = (svc.get("spec") or {}).get("ports") or []
        groups: dict[tuple[Any, ...], dict[str, list[Obj]]] = {}
        for pod in pods:
            resolved = []
            for p in ports:
                num = _find_port(pod, p)
                if num is None:
                    continue
                entry: dict[str, Any] = {"port": num, "protocol": p.get("protocol", "TCP")}
                if p.get("name"):
                    entry = {"name": p["name"], **entry}
                if p.get("appProtocol"):
                    entry["appProtocol"] = p["appProtocol"]
                resolved.append(entry)
            if ports and not resolved:
                continue
            pmeta = pod["metadata"]
            address = {
                "ip": pod["status"]["podIP"],
                "nodeName": (pod.get("spec") or {}).get("nodeName", ""),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": pmeta["name"],
                    "uid": pmeta.get("uid", ""),
                },
            }
            group = groups.setdefault(
                tuple(tuple(sorted(r.items())) for r in resolved),
                {"addresses": [], "notReadyAddresses": [], "ports": resolved},
            )
            group["addresses" if _ready(pod) else "notReadyAddresses"].append(address)
        subsets = []
        for group in groups.values():
            subset: dict[str, Any] = {}
            for field in ("addresses", "notReadyAddresses"):
                if group[field]:
                    subset[field] = sorted(group[field], key=lambda a: a["ip"])
            if group["ports"]:
                subset["ports"] = group["ports"]
            subsets.append(subset)
        current = self.store.get(ENDPOINTS.key, ns, name)
        labels = self._labels(svc, {MANAGED_BY: ENDPOINT_CONTROLLER})
        if (
            current is not None
            and (current.get("subsets") or []) == subsets
            and current["metadata"].get("labels") == labels
        ):
            return
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {TRIGGER_TIME: now_iso()},
            },
        }
        if current is None:
            body["subsets"] = subsets
            if not subsets:
                del body["subsets"]
            self.api.create(ENDPOINTS, ns, body, internal=True)
            return
        new = dict(current)
        new["metadata"] = dict(current["metadata"], **body["metadata"])
        new.pop("subsets", None)
        if subsets:
            new["subsets"] = subsets
        self.store.put(ENDPOINTS.key, new)

    def _sync_slice(self, svc: Obj, pods: list[Obj]) -> None:
        meta = svc["metadata"]
        ns, name = meta["namespace"], meta["name"]
        key = (ns, name)
        ports = (svc.get("spec") or {}).get("ports") or []
        endpoints: list[dict[str, Any]] = []
        slice_ports: list[dict[str, Any]] | None = None
        for pod in pods:
            resolved = []
            for p in ports:
                num = _find_port(pod, p)
                if num is not None:
                    entry = {"name": p.get("name", ""), "port": num}
                    entry["protocol"] = p.get("protocol", "TCP")
                    if p.get("appProtocol"):
                        entry["appProtocol"] = p["appProtocol"]
                    resolved.append(entry)
            if ports and not resolved:
                continue
            if slice_ports is None:
                slice_ports = resolved
            serving = _ready(pod)
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            endpoints.append(
                {
                    "addresses": [pod["status"]["podIP"]],
                    "conditions": {
                        "ready": serving and not terminating,
                        "serving": serving,
                        "terminating": terminating,
                    },
                    "targetRef": {
                        "kind": "Pod",
                        "namespace": ns,
                        "name": pod["metadata"]["name"],
                        "uid": pod["metadata"].get("uid", ""),
                    },
                    "nodeName": (pod.get("spec") or {}).get("nodeName", ""),
                }
            )
        labels = self._labels(svc, {SERVICE_NAME: name, SLICE_MANAGED_BY: SLICE_CONTROLLER})
        current_name = self._slices.get(key)
        current = self.store.get(ENDPOINTSLICES.key, ns, current_name) if current_name else None
        want = {
            "addressType": "IPv4",
            "endpoints": endpoints or None,
            "ports": slice_ports or None,
        }
        if current is not None:
            same = all(current.get(k) == v for k, v in want.items())
            if same and current["metadata"].get("labels") == labels:
                return
            new = dict(current, **want)
            new["metadata"] = dict(
                current["metadata"],
                labels=labels,
                generation=current["metadata"].get("generation", 1) + 1,
                annotations={TRIGGER_TIME: now_iso()},
            )
            self.store.put(ENDPOINTSLICES.key, new)
            return
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-{random_suffix()}",
                "generateName": f"{name}-",
                "generation": 1,
                "labels": labels,
                "annotations": {TRIGGER_TIME: now_iso()},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": name,
                        "uid": meta.get("uid", ""),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            **want,
        }
        created = self.api.create(ENDPOINTSLICES, ns, body, internal=True)
        self._slices[key] = created["metadata"]["name"]
