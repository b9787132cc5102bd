"""The Deployment, ReplicaSet and pod-readiness controllers (one background thread).

The algorithms follow kube-controller-manager's ``deployment`` and ``replicaset``
controllers (``rolloutRolling``, ``reconcileNewReplicaSet``, ``reconcileOldReplicaSets``,
``syncRolloutStatus``...), including their rounding: maxSurge rounds up, maxUnavailable
rounds down, and both zero means maxUnavailable 1.

Efficiency invariant: the controller only touches objects that changed (store listeners put
their keys in dirty sets) or whose timer fired (a pod becoming Ready, minReadySeconds
elapsing, a progress deadline). An idle fleet of thousands of Deployments costs nothing.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import re
import threading
import time
import zlib
from datetime import UTC, datetime
from typing import Any

import msgspec

from .api import Api, random_suffix
from .bootstrap import (
    DEFAULT_SERVICE_ACCOUNT,
    NODE_IP,
    NODE_NAME,
    ROOT_CA_CONFIGMAP,
    namespace_defaults,
)
from .endpoints import EndpointsController
from .errors import ApiError
from .events import EventRecorder
from .resources import CONFIGMAPS, DEPLOYMENTS, EVENTS, PODS, REPLICASETS, SERVICEACCOUNTS
from .store import Obj, deep_copy

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
# Annotations the real controller never copies from a Deployment to its ReplicaSets.
_NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
    }
)
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

Key = tuple[str, str]  # (namespace, name)
_EVENTS = EVENTS.key


# Sorted keys: a template's hash must not depend on the order its keys arrived in.
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


def template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """Stable pod-template-hash: a 32-bit hash of the template, SafeEncodeString'd like the real
    controller's.

    The real controller hashes a spew dump of the Go struct with FNV-32a; no client can recompute
    that from JSON, so only its shape matters (stable per template and collision count, changed
    by any template edit, 8-10 characters of the safe alphabet). CRC-32 in C gives that shape at
    a hundredth of a pure-Python FNV's cost, which was a tenth of kubesim's time in a rollout.
    """
    data = _encode_sorted(_without_hash(template))
    if collision_count:
        # ComputeHash writes the count as 8 little-endian bytes (a uint32, zero-padded).
        data += int(collision_count).to_bytes(4, "little") + bytes(4)
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in str(zlib.crc32(data)).encode())


def _without_hash(template: dict[str, Any] | None) -> Any:
    """``template`` minus its pod-template-hash label, for comparing and hashing only.

    Shares structure with ``template`` (stored objects are immutable): only the path down to
    the labels is copied, and only when there is a hash label to drop.
    """
    t = template or {}
    meta = t.get("metadata")
    if isinstance(meta, dict):
        labels = meta.get("labels")
        if isinstance(labels, dict) and HASH_LABEL in labels:
            labels = {k: v for k, v in labels.items() if k != HASH_LABEL}
            return {**t, "metadata": {**meta, "labels": labels}}
    return t


# Kinds whose status the kube-controller-manager writes (and so owns in managedFields).
CONTROLLER_MANAGER = "kube-controller-manager"
_CONTROLLER_STATUS_KINDS = (DEPLOYMENTS, REPLICASETS)


def _as_controller(rt: Any, old: Obj, new: Obj) -> Obj:
    """``new`` (a fresh version of ``old`` from :func:`_with_status`) with the managedFields
    entry of kube-controller-manager's ``/status`` write, as a real one leaves (what
    ``kubectl get -o yaml`` and server-side apply conflicts see).

    The controller owns whole status fields, never anyone else's, so its entry is a function
    of the status's shape alone: built once per shape instead of diffed per write (the
    general ``track_update`` doubled the cost of a 1,000-site rollout).
    """
    fields = _controller_fields(new)
    meta = new["metadata"]
    entries = meta.get("managedFields") or []
    for i, entry in enumerate(entries):
        if entry.get("manager") == CONTROLLER_MANAGER and entry.get("subresource") == "status":
            if entry.get("fieldsV1") is fields:
                return new  # same ownership: the entry (and its time) stays as it was
            entries = [*entries[:i], *entries[i + 1 :]]
            break
    entry = {
        "manager": CONTROLLER_MANAGER,
        "operation": "Update",
        "apiVersion": rt.api_version,
        "time": _now_iso(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        "subresource": "status",
    }
    meta["managedFields"] = [*entries, entry]
    return new


_CONTROLLER_FIELDS: dict[tuple[Any, ...], dict[str, Any]] = {}


def _controller_fields(obj: Obj) -> dict[str, Any]:
    """FieldsV1 of the controller's status write; one shared (never mutated) dict per shape."""
    status = obj.get("status") or {}
    conditions = tuple(
        (c.get("type"), tuple(sorted(k for k in c if k != "type")))
        for c in status.get("conditions") or []
    )
    annotations = obj["metadata"].get("annotations") or {}
    revision = REVISION in annotations
    shape = (tuple(sorted(k for k in status if k != "conditions")), conditions, revision)
    fields = _CONTROLLER_FIELDS.get(shape)
    if fields is None:
        status_fields: dict[str, Any] = {f"f:{k}": {} for k in shape[0]}
        if conditions:
            status_fields["f:conditions"] = {
                ".": {},
                **{
                    f'k:{{"type":{json.dumps(kind)}}}': {
                        ".": {},
                        **{f"f:{k}": {} for k in keys},
                        "f:type": {},
                    }
                    for kind, keys in conditions
                },
            }
        fields = {"f:status": status_fields}
        if revision:
            fields["f:metadata"] = {"f:annotations": {f"f:{REVISION}": {}}}
        _CONTROLLER_FIELDS[shape] = fields
    return fields


def _with_status(obj: Obj, status: dict[str, Any]) -> Obj:
    """A new version of stored ``obj`` with ``status`` replaced.

    Copies only the top level and ``metadata`` (which the API layer stamps); everything else is
    shared with ``obj``: stored objects are never mutated, so sharing is safe.
    """
    new = dict(obj)
    new["metadata"] = dict(obj["metadata"])
    new["status"] = status
    return new


def resolve(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        frac = int(value[:-1]) * total / 100
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(value or 0)


def fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for a RollingUpdate Deployment."""
    spec = d["spec"]
    replicas = spec.get("replicas", 1)
    ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = resolve(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(d: Obj) -> int:
    spec = d["spec"]
    replicas = spec.get("replicas", 1)
    if (spec.get("strategy") or {}).get("type") != "RollingUpdate" or replicas == 0:
        return 0
    return min(fenceposts(d)[1], replicas)


def parse_time(ts: str | None) -> float:
    if not ts:
        return 0.0
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def revision_of(obj: Obj) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _replicas(rs: Obj) -> int:
    return rs["spec"].get("replicas", 0)


def _st(rs: Obj, field: str) -> int:
    return (rs.get("status") or {}).get(field, 0) or 0


_now_cache: tuple[int, str] = (0, "")


def _now_iso() -> str:
    """``api.now_iso()`` (whole seconds, UTC), formatted once per second."""
    global _now_cache
    second = int(time.time())
    if _now_cache[0] != second:
        _now_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _now_cache[1]


def _cond(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def _set_cond(status: dict[str, Any], ctype: str, cstatus: str, reason: str, message: str) -> None:
    """SetDeploymentCondition: same status+reason is a no-op; same status keeps transition time."""
    now = _now_iso()
    cur = _cond(status, ctype)
    if cur is not None and cur["status"] == cstatus and cur.get("reason") == reason:
        return
    cond = {
        "type": ctype,
        "status": cstatus,
        "lastUpdateTime": now,
        "lastTransitionTime": cur["lastTransitionTime"]
        if cur is not None and cur["status"] == cstatus
        else now,
        "reason": reason,
        "message": message,
    }
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype] + [
        cond
    ]


def _controlled_by(obj: Obj, uid: str) -> bool:
    return any(
        r.get("uid") == uid and r.get("controller")
        for r in obj["metadata"].get("ownerReferences") or ()
    )


def _drop_cond(status: dict[str, Any], ctype: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != ctype]


class Controllers:
    """Runs the controllers on a background thread; all state changes go through :class:`Api`."""

    def __init__(
        self, api: Api, ready_after: float = 0.5, fail_images: str | None = None, tick: float = 0.02
    ) -> None:
        self.api = api
        self.store = api.store
        self.ready_after = ready_after
        self.fail_images: re.Pattern[str] | None = re.compile(fail_images) if fail_images else None
        self.tick = tick
        self._dirty_rs: set[Key] = set()
        self._dirty_d: set[Key] = set()
        self._dirty_ns: set[str] = set()
        self._timers: list[tuple[float, int, str, str, str]] = []
        self._seq = itertools.count()
        self._ready_at: dict[str, float] = {}  # pod uid -> wall time it became Ready
        # (id(template), id(template)) -> (template, template, equal?); see _same_template.
        self._template_cache: dict[tuple[int, int], tuple[Any, Any, bool]] = {}
        self.events = EventRecorder(self.store)
        self.endpoints = EndpointsController(api)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.store.listeners.append(self._on_event)

    # -- configuration -----------------------------------------------------------------
    def set_fail_images(self, regex: str | None) -> None:
        self.fail_images = re.compile(regex) if regex else None

    def image_fails(self, image: str) -> bool:
        return bool(self.fail_images and self.fail_images.search(image))

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kubesim-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            try:
                self.process()
            except Exception:  # a controller bug must not kill the emulator
                import traceback

                traceback.print_exc()

    # -- event intake (runs under the store lock in writer threads) -----------------------
    def _on_event(self, type_key: str, etype: str, obj: Obj, old: Obj | None) -> None:
        if type_key == _EVENTS:  # the controllers' own events: the most frequent, never work
            return
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        if type_key == PODS.key:
            for ref in meta.get("ownerReferences") or ():
                if ref.get("kind") == "ReplicaSet" and ref.get("controller"):
                    self._dirty_rs.add((ns, ref["name"]))
            if etype == "ADDED":
                self._schedule(time.time() + self.ready_after, "pod", ns, meta["name"])
            elif etype == "DELETED":
                self._ready_at.pop(meta.get("uid", ""), None)
        elif type_key == REPLICASETS.key:
            if etype != "DELETED":
                self._dirty_rs.add((ns, meta["name"]))
            for ref in meta.get("ownerReferences") or ():
                if ref.get("kind") == "Deployment" and ref.get("controller"):
                    self._dirty_d.add((ns, ref["name"]))
        elif type_key == DEPLOYMENTS.key and etype != "DELETED":
            self._dirty_d.add((ns, meta["name"]))
        elif etype == "DELETED" and (
            (type_key == SERVICEACCOUNTS.key and meta["name"] == DEFAULT_SERVICE_ACCOUNT)
            or (type_key == CONFIGMAPS.key and meta["name"] == ROOT_CA_CONFIGMAP)
        ):
            self._dirty_ns.add(ns)  # the serviceaccounts / root-ca-cert-publisher controllers
        else:
            return
        if not self._wake.is_set():  # cheaper than set() when the loop is awake anyway
            self._wake.set()

    def _schedule(self, due: float, kind: str, ns: str, name: str) -> None:
        with self.store.lock:
            heapq.heappush(self._timers, (due, next(self._seq), kind, ns, name))

    # -- the loop ------------------------------------------------------------------------------
    def process(self) -> None:
        """Run due timers and sync dirty objects until quiet (bounded, so writers get a turn)."""
        for _ in range(20):
            self._fire_timers()
            with self.store.lock:
                rs_batch, self._dirty_rs = self._dirty_rs, set()
                d_batch, self._dirty_d = self._dirty_d, set()
            if not rs_batch and not d_batch:
                break
            for ns, name in sorted(rs_batch):
                self._guard(self.sync_replicaset, ns, name)
            for ns, name in sorted(d_batch):
                self._guard(self.sync_deployment, ns, name)
        # Services last: each is synced once however many of its pods changed above.
        if self.endpoints.dirty:
            self.endpoints.process()
        if self._dirty_ns:
            with self.store.lock:
                spaces, self._dirty_ns = self._dirty_ns, set()
                for ns in sorted(spaces):
                    namespace_defaults(self.api, ns)

    def _guard(self, fn: Any, ns: str, name: str) -> None:
        try:
            with self.store.lock:
                fn(ns, name)
        except ApiError:
            pass  # the object changed or vanished underneath us; its event re-queues it

    def _fire_timers(self) -> None:
        now = time.time()
        due: list[tuple[str, str, str]] = []
        with self.store.lock:
            while self._timers and self._timers[0][0] <= now:
                _, _, kind, ns, name = heapq.heappop(self._timers)
                due.append((kind, ns, name))
        for kind, ns, name in due:
            if kind == "pod":
                self._guard(self.pod_started, ns, name)
            elif kind == "rs":
                self._dirty_rs.add((ns, name))
            elif kind == "deploy":
                self._dirty_d.add((ns, name))

    # -- pods ------------------------------------------------------------------------------
    def pod_started(self, ns: str, name: str) -> None:
        """The kubelet's part: a pod's containers start; Ready unless its image fails."""
        pod = self.store.get(PODS.key, ns, name)
        if pod is None or (pod.get("status") or {}).get("phase") not in (None, "Pending"):
            return
        now = _now_iso()
        containers = pod["spec"].get("containers") or []
        failing = [c for c in containers if self.image_fails(str(c.get("image", "")))]
        ready = not failing
        statuses = []
        for c in containers:
            bad = c in failing
            cs: dict[str, Any] = {
                "name": c.get("name"),
                "image": c.get("image"),
                "imageID": "",
                "ready": not bad,
                "restartCount": 1 if bad else 0,
                "started": not bad,
            }
            if bad:
                cs["state"] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off 10s restarting failed container={c.get('name')} pod={name}",  # noqa: E501 - verbatim message
                    }
                }
                cs["lastState"] = {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": now,
                        "finishedAt": now,
                    }
                }
            else:
                cs["state"] = {"running": {"startedAt": now}}
            statuses.append(cs)
        flag = "True" if ready else "False"
        pod_ip = f"10.244.{hash(name) % 250}.{hash(ns + name) % 250 + 1}"
        conds = [
            {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": flag, "lastTransitionTime": now},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ]
        if not ready:
            for c in conds[2:4]:
                c["reason"] = "ContainersNotReady"
                c["message"] = (
                    "containers with unready status: ["
                    + " ".join(str(c2.get("name")) for c2 in failing)
                    + "]"
                )
        new = _with_status(
            pod,
            {
                "phase": "Running",
                "conditions": conds,
                "hostIP": NODE_IP,
                "hostIPs": [{"ip": NODE_IP}],
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": pod["metadata"].get("creationTimestamp", now),
                "containerStatuses": statuses,
                "qosClass": "BestEffort",
            },
        )
        bound = not pod["spec"].get("nodeName")
        if bound:
            # The scheduler's binding: a pod created on its own lands on the one node too.
            new["spec"] = dict(pod["spec"], nodeName=NODE_NAME)
        if ready:
            self._ready_at[pod["metadata"]["uid"]] = time.time()
        stored = self._put_status(PODS, pod, new)
        if bound:
            self.events.scheduled(stored, NODE_NAME)

    def set_pod_ready(self, ns: str, name: str, ready: bool) -> bool:
        """The kubelet's readiness probe turns ``ready`` for a running pod (caller holds the
        store lock); False if the pod is gone or not running yet, True when it was set.

        Not ready: the pod's Ready and ContainersReady conditions go False (with the real
        kubelet's reason and message), its containers report ``ready: false``, and it stops
        counting as ready or available, so its ReplicaSet and Deployment lose an available
        replica and its Service endpoint moves to ``notReadyAddresses``. Ready again: it
        counts from now (``minReadySeconds`` runs afresh), as after a real probe recovers.
        """
        pod = self.store.get(PODS.key, ns, name)
        if pod is None or (pod.get("status") or {}).get("phase") != "Running":
            return False
        uid = pod["metadata"]["uid"]
        if ready == (uid in self._ready_at):
            return True
        now = _now_iso()
        status = deep_copy(pod.get("status") or {})
        flag = "True" if ready else "False"
        containers = status.get("containerStatuses") or []
        for cs in containers:
            cs["ready"] = ready
        for cond in status.get("conditions") or []:
            if cond.get("type") in ("Ready", "ContainersReady"):
                cond["status"] = flag
                cond["lastTransitionTime"] = now
                cond.pop("reason", None)
                cond.pop("message", None)
                if not ready:
                    cond["reason"] = "ContainersNotReady"
                    names = " ".join(str(cs.get("name")) for cs in containers)
                    cond["message"] = f"containers with unready status: [{names}]"
        if ready:
            self._ready_at[uid] = time.time()
        else:
            self._ready_at.pop(uid, None)
        self._put_status(PODS, pod, _with_status(pod, status))
        return True

    def _put_status(self, rt: Any, old: Obj, new: Obj) -> Obj:
        """Store ``new``: the current ``old`` with only its status (and annotations) changed.

        For such a write ``Api.update(internal=True)`` keeps every other field of ``old``, and
        its defaulting, validation and no-op check cannot change or reject anything the stored
        ``old`` already passed (callers only write when the status differs), so the result is
        the same object at a fraction of the cost. If ``old`` is no longer the stored version,
        ``Api.update`` answers 409 as before. Runs under the store lock (see :meth:`_guard`).
        """
        meta = old["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        if self.store.get(rt.key, ns, name) is not old:
            return self.api.update(rt, ns, name, new, internal=True)
        return self.store.put(rt.key, new)

    def pod_ready(self, pod: Obj) -> bool:
        return pod["metadata"]["uid"] in self._ready_at

    # -- ReplicaSets -------------------------------------------------------------------------
    def sync_replicaset(self, ns: str, name: str) -> None:
        """Sync one ReplicaSet (caller holds the store lock).

        The events of this sync's own writes (its pods created or deleted, its status) queue it
        again; that second look would be a no-op, since this sync already counted those pods
        and scheduled any timer it needs, so it is dropped unless the ReplicaSet was queued
        before. Owners (the Deployment) are still queued by those events.
        """
        key = (ns, name)
        queued = key in self._dirty_rs
        self._sync_replicaset(ns, name)
        if not queued:
            self._dirty_rs.discard(key)

    def _sync_replicaset(self, ns: str, name: str) -> None:
        rs = self.store.get(REPLICASETS.key, ns, name)
        if rs is None:
            return
        owned = self.api.owned_by(rs, PODS.key)
        pods = [p for p in owned if not p["metadata"].get("deletionTimestamp")]
        terminating = len(owned) - len(pods)
        want = rs["spec"].get("replicas", 1)
        if len(pods) < want:
            for _ in range(want - len(pods)):
                pod = self._create_pod(rs)
                pods.append(pod)
                self.events.record(
                    rs,
                    "Normal",
                    "SuccessfulCreate",
                    f"Created pod: {pod['metadata']['name']}",
                    "replicaset-controller",
                    _now_iso(),
                )
        elif len(pods) > want:
            # Like the real controller: delete not-ready pods first, then the newest.
            victims = sorted(
                pods,
                key=lambda p: (self.pod_ready(p), self._ready_at.get(p["metadata"]["uid"], 0.0)),
            )[: len(pods) - want]
            doomed = {p["metadata"]["name"] for p in victims}
            for p in victims:
                self.api.delete(PODS, ns, p["metadata"]["name"])
                self.events.record(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    f"Deleted pod: {p['metadata']['name']}",
                    "replicaset-controller",
                    _now_iso(),
                )
            pods = [p for p in pods if p["metadata"]["name"] not in doomed]
        now = time.time()
        min_ready = rs["spec"].get("minReadySeconds", 0) or 0
        ready = available = 0
        next_check = math.inf
        for p in pods:
            at = self._ready_at.get(p["metadata"]["uid"])
            if at is None:
                continue
            ready += 1
            if at + min_ready <= now:
                available += 1
            else:
                next_check = min(next_check, at + min_ready)
        if next_check < math.inf:
            self._schedule(next_check + 0.001, "rs", ns, name)
        status: dict[str, Any] = {
            "replicas": len(pods),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if len(pods):
            status["fullyLabeledReplicas"] = len(pods)
        if ready:
            status["readyReplicas"] = ready
        if available:
            status["availableReplicas"] = available
        # v1.37 (DeploymentReplicaSetTerminatingReplicas, on by default): a pointer, so a zero
        # is reported too. kubesim deletes pods at once, so it is 0 but for a stuck deletion.
        status["terminatingReplicas"] = terminating
        if status != rs.get("status"):
            self._put_status(
                REPLICASETS, rs, _as_controller(REPLICASETS, rs, _with_status(rs, status))
            )

    def _create_pod(self, rs: Obj) -> Obj:
        meta = rs["metadata"]
        # Shallow copies of what the pod changes or owns; the rest is shared with the
        # (immutable, already defaulted) ReplicaSet template.
        template = rs["spec"].get("template") or {}
        tmeta = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{random_suffix()}",
                "namespace": meta["namespace"],
                "labels": dict(tmeta.get("labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": dict(template.get("spec") or {}),
            "status": {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now_iso()}
                ],
                "qosClass": "BestEffort",
            },
        }
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = dict(tmeta["annotations"])
        pod["spec"]["nodeName"] = NODE_NAME
        created = self.api.create(PODS, meta["namespace"], pod, internal=True)
        self.events.scheduled(created, NODE_NAME)
        return created

    def _scale_rs(self, rs: Obj, replicas: int, d: Obj) -> Obj:
        if _replicas(rs) == replicas:
            return rs
        new = dict(rs)
        new["spec"] = dict(rs["spec"], replicas=replicas)
        new["metadata"] = dict(rs["metadata"])
        ann = new["metadata"]["annotations"] = dict(rs["metadata"].get("annotations") or {})
        ann[DESIRED_REPLICAS] = str(d["spec"].get("replicas", 1))
        ann[MAX_REPLICAS] = str(d["spec"].get("replicas", 1) + self._surge(d))
        scaled = self.api.update(
            REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], new, internal=True
        )
        old = _replicas(rs)
        self.events.record(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {'up' if replicas > old else 'down'} replica set "
            f"{rs['metadata']['name']} from {old} to {replicas}",
            "deployment-controller",
            _now_iso(),
        )
        return scaled

    def _surge(self, d: Obj) -> int:
        if (d["spec"].get("strategy") or {}).get("type") != "RollingUpdate":
            return 0
        return fenceposts(d)[0]

    # -- Deployments -------------------------------------------------------------------------
    def sync_deployment(self, ns: str, name: str) -> None:
        d = self.store.get(DEPLOYMENTS.key, ns, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        all_rs = sorted(
            self.api.owned_by(d, REPLICASETS.key),
            key=lambda r: (r["metadata"].get("creationTimestamp", ""), r["metadata"]["name"]),
        )
        # Shallow: conditions are replaced (never edited in place) by _set_cond/_drop_cond.
        status = dict(d.get("status") or {})
        annotations: dict[str, str] = dict(d["metadata"].get("annotations") or {})
        spec = d["spec"]
        paused = bool(spec.get("paused"))
        new_rs = self._find_new_rs(d, all_rs)
        old_rss = [
            r for r in all_rs if new_rs is None or r["metadata"]["uid"] != new_rs["metadata"]["uid"]
        ]

        if paused:
            # Paused: scale what exists, roll nothing (sync() in the real controller).
            if new_rs is not None:
                new_rs, annotations = self._sync_revision(
                    d, new_rs, old_rss, status, annotations, announce=False
                )
                if not old_rss or all(_replicas(r) == 0 for r in old_rss):
                    new_rs = self._scale_rs(new_rs, spec.get("replicas", 1), d)
        elif (spec.get("strategy") or {}).get("type") == "Recreate":
            new_rs = self._rollout_recreate(d, new_rs, old_rss, status, annotations)
        else:
            new_rs = self._rollout_rolling(d, new_rs, old_rss, status, annotations)
        # Reload what we changed.
        all_rs = [
            r
            for r in (self.store.get(REPLICASETS.key, ns, x["metadata"]["name"]) for x in all_rs)
            if r is not None
        ]
        if new_rs is not None:
            new_rs = self.store.get(REPLICASETS.key, ns, new_rs["metadata"]["name"])
            if new_rs is not None and all(
                r["metadata"]["uid"] != new_rs["metadata"]["uid"] for r in all_rs
            ):
                all_rs.append(new_rs)
        annotations = self._annotations_after(annotations, new_rs)
        self._write_status(d, all_rs, new_rs, status, annotations, paused)

    def _annotations_after(self, annotations: dict[str, str], new_rs: Obj | None) -> dict[str, str]:
        if new_rs is not None:
            rev = (new_rs["metadata"].get("annotations") or {}).get(REVISION)
            if rev:
                annotations[REVISION] = rev
        return annotations

    def _find_new_rs(self, d: Obj, all_rs: list[Obj]) -> Obj | None:
        want = d["spec"].get("template")
        # The oldest match wins, as in FindNewReplicaSet.
        return next(
            (r for r in all_rs if self._same_template(want, r["spec"].get("template"))), None
        )

    def _same_template(self, want: Any, have: Any) -> bool:
        """Whether two pod templates are equal apart from the pod-template-hash label.

        Memoised by object identity: stored objects are immutable and a template object survives
        status and scale writes (they share it), so a Deployment synced again and again compares
        each of its templates once. Entries hold their objects, so an id is never reused while
        cached.
        """
        key = (id(want), id(have))
        hit = self._template_cache.get(key)
        if hit is not None and hit[0] is want and hit[1] is have:
            return hit[2]
        same = bool(_without_hash(want) == _without_hash(have))
        if len(self._template_cache) >= 20_000:
            self._template_cache.clear()
        self._template_cache[key] = (want, have, same)
        return same

    def _sync_revision(
        self,
        d: Obj,
        new_rs: Obj,
        old_rss: list[Obj],
        status: dict[str, Any],
        annotations: dict[str, str],
        announce: bool,
    ) -> tuple[Obj, dict[str, str]]:
        """getNewReplicaSet for an existing RS: renumber it if the template returned to it."""
        max_old = max((revision_of(r) for r in old_rss), default=0)
        new_revision = max_old + 1
        current = revision_of(new_rs)
        desired_ann = self._copied_annotations(d, new_rs)
        if current < new_revision:
            if current:
                hist = desired_ann.get(REVISION_HISTORY)
                desired_ann[REVISION_HISTORY] = f"{hist},{current}" if hist else str(current)
            desired_ann[REVISION] = str(new_revision)
        else:
            desired_ann[REVISION] = str(current)
        if desired_ann != (new_rs["metadata"].get("annotations") or {}):
            upd = dict(new_rs)
            upd["metadata"] = dict(new_rs["metadata"], annotations=desired_ann)
            new_rs = self.api.update(
                REPLICASETS,
                d["metadata"]["namespace"],
                new_rs["metadata"]["name"],
                upd,
                internal=True,
            )
        if announce and _cond(status, "Progressing") is None:
            _set_cond(
                status,
                "Progressing",
                "True",
                "FoundNewReplicaSet",
                f'Found new replica set "{new_rs["metadata"]["name"]}"',
            )
        return new_rs, annotations

    def _copied_annotations(self, d: Obj, rs: Obj) -> dict[str, str]:
        ann = {k: v for k, v in (rs["metadata"].get("annotations") or {}).items()}
        for k, v in (d["metadata"].get("annotations") or {}).items():
            if k not in _NOT_COPIED:
                ann[k] = v
        return ann

    def _create_new_rs(
        self, d: Obj, old_rss: list[Obj], replicas: int, status: dict[str, Any]
    ) -> Obj:
        meta = d["metadata"]
        # The Deployment's template plus the hash label; copied down to the labels only, the
        # rest (the pod spec) is shared with the immutable, already defaulted Deployment.
        template = d["spec"]["template"]
        collisions = (d.get("status") or {}).get("collisionCount", 0) or 0
        h = template_hash(template, collisions)
        tmeta = dict(template.get("metadata") or {})
        tmeta["labels"] = dict(tmeta.get("labels") or {}, **{HASH_LABEL: h})
        template = dict(template, metadata=tmeta)
        selector = dict(d["spec"]["selector"])
        selector["matchLabels"] = dict(selector.get("matchLabels") or {}, **{HASH_LABEL: h})
        revision = max((revision_of(r) for r in old_rss), default=0) + 1
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items() if k not in _NOT_COPIED
        }
        annotations[REVISION] = str(revision)
        annotations[DESIRED_REPLICAS] = str(d["spec"].get("replicas", 1))
        annotations[MAX_REPLICAS] = str(d["spec"].get("replicas", 1) + self._surge(d))
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{h}",
                "namespace": meta["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
            "status": {"replicas": 0},
        }
        if d["spec"].get("minReadySeconds"):  # omitempty: a zero is not in the JSON
            rs["spec"]["minReadySeconds"] = d["spec"]["minReadySeconds"]
        try:
            created = self.api.create(REPLICASETS, meta["namespace"], rs, internal=True)
        except ApiError as e:
            if e.code != 409:
                raise
            existing = self.store.get(REPLICASETS.key, meta["namespace"], rs["metadata"]["name"])
            if (
                existing is not None
                and _controlled_by(existing, meta["uid"])
                and self._same_template(d["spec"]["template"], existing["spec"].get("template"))
            ):
                return existing  # ours already (a sync that raced its own create)
            # A hash collision with a foreign template: persist collisionCount + 1 (the hash
            # includes it) and let the status write queue the next sync, which retries with
            # the new hash; as getNewReplicaSet does.
            current = self.store.get(DEPLOYMENTS.key, meta["namespace"], meta["name"])
            if current is not None:
                bumped = dict(current.get("status") or {}, collisionCount=collisions + 1)
                bumped_d = _as_controller(DEPLOYMENTS, current, _with_status(current, bumped))
                self._put_status(DEPLOYMENTS, current, bumped_d)
            raise
        if replicas > 0:
            self.events.record(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}",
                "deployment-controller",
                _now_iso(),
            )
        _set_cond(
            status,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            f'Created new replica set "{created["metadata"]["name"]}"',
        )
        return created

    def _new_rs_replicas(self, d: Obj, all_rs: list[Obj], new_rs: Obj | None) -> int:
        replicas = d["spec"].get("replicas", 1)
        if (d["spec"].get("strategy") or {}).get("type") == "Recreate":
            return replicas
        current_new = _replicas(new_rs) if new_rs is not None else 0
        surge, _ = fenceposts(d)
        current = sum(_replicas(r) for r in all_rs)
        max_total = replicas + surge
        if current >= max_total:
            return current_new
        scale_up = min(max_total - current, replicas - current_new)
        return current_new + max(scale_up, 0)

    def _rollout_rolling(
        self,
        d: Obj,
        new_rs: Obj | None,
        old_rss: list[Obj],
        status: dict[str, Any],
        annotations: dict[str, str],
    ) -> Obj | None:
        replicas = d["spec"].get("replicas", 1)
        if new_rs is None:
            new_rs = self._create_new_rs(
                d, old_rss, self._new_rs_replicas(d, old_rss, None), status
            )
        else:
            new_rs, annotations = self._sync_revision(
                d, new_rs, old_rss, status, annotations, announce=True
            )
        all_rs = [*old_rss, new_rs]
        # reconcileNewReplicaSet
        if _replicas(new_rs) != replicas:
            target = (
                replicas
                if _replicas(new_rs) > replicas
                else self._new_rs_replicas(d, all_rs, new_rs)
            )
            if target != _replicas(new_rs):
                self._scale_rs(new_rs, target, d)
                return new_rs
        # reconcileOldReplicaSets
        active_old = [r for r in old_rss if _replicas(r) > 0]
        if active_old and self._reconcile_old(d, new_rs, old_rss, active_old):
            return new_rs
        if self._complete(d, [*old_rss, new_rs], new_rs):
            self._cleanup(d, old_rss)
        return new_rs

    def _reconcile_old(
        self, d: Obj, new_rs: Obj, old_rss: list[Obj], active_old: list[Obj]
    ) -> bool:
        replicas = d["spec"].get("replicas", 1)
        all_rs = [*old_rss, new_rs]
        all_pods = sum(_replicas(r) for r in all_rs)
        min_available = replicas - max_unavailable(d)
        new_unavailable = _replicas(new_rs) - _st(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        # cleanupUnhealthyReplicas: old pods that are not available go first.
        cleaned = 0
        current_old: dict[str, Obj] = {r["metadata"]["name"]: r for r in active_old}
        for rs in active_old:
            if cleaned >= max_scaled_down:
                break
            unhealthy = _replicas(rs) - _st(rs, "availableReplicas")
            if unhealthy <= 0:
                continue
            n = min(max_scaled_down - cleaned, unhealthy)
            current_old[rs["metadata"]["name"]] = self._scale_rs(rs, _replicas(rs) - n, d)
            cleaned += n
        # scaleDownOldReplicaSetsForRollingUpdate
        olds = list(current_old.values())
        available = sum(_st(r, "availableReplicas") for r in [*olds, new_rs])
        scaled = 0
        if available > min_available:
            total = available - min_available
            for rs in olds:
                if scaled >= total:
                    break
                if _replicas(rs) == 0:
                    continue
                n = min(_replicas(rs), total - scaled)
                self._scale_rs(rs, _replicas(rs) - n, d)
                scaled += n
        return cleaned + scaled > 0

    def _rollout_recreate(
        self,
        d: Obj,
        new_rs: Obj | None,
        old_rss: list[Obj],
        status: dict[str, Any],
        annotations: dict[str, str],
    ) -> Obj | None:
        scaled = False
        for rs in old_rss:
            if _replicas(rs) > 0:
                self._scale_rs(rs, 0, d)
                scaled = True
        if scaled:
            return new_rs
        if any(_st(r, "replicas") > 0 for r in old_rss):
            return new_rs  # wait for old pods to be gone
        if new_rs is None:
            new_rs = self._create_new_rs(d, old_rss, d["spec"].get("replicas", 1), status)
        else:
            new_rs, annotations = self._sync_revision(
                d, new_rs, old_rss, status, annotations, announce=True
            )
            new_rs = self._scale_rs(new_rs, d["spec"].get("replicas", 1), d)
        if self._complete(d, [*old_rss, new_rs], new_rs):
            self._cleanup(d, old_rss)
        return new_rs

    def _complete(self, d: Obj, all_rs: list[Obj], new_rs: Obj | None) -> bool:
        replicas = d["spec"].get("replicas", 1)
        return (
            new_rs is not None
            and _st(new_rs, "replicas") == replicas
            and sum(_st(r, "replicas") for r in all_rs) == replicas
            and sum(_st(r, "availableReplicas") for r in all_rs) == replicas
        )

    def _cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        """Garbage-collect old ReplicaSets beyond revisionHistoryLimit."""
        limit = d["spec"].get("revisionHistoryLimit", 10)
        if limit is None:
            return
        idle = [r for r in old_rss if _replicas(r) == 0 and _st(r, "replicas") == 0]
        idle.sort(key=lambda r: (revision_of(r), r["metadata"].get("creationTimestamp", "")))
        for rs in idle[: max(0, len(idle) - limit)]:
            self.api.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _write_status(
        self,
        d: Obj,
        all_rs: list[Obj],
        new_rs: Obj | None,
        status: dict[str, Any],
        annotations: dict[str, str],
        paused: bool,
    ) -> None:
        spec = d["spec"]
        replicas = spec.get("replicas", 1)
        old_status = d.get("status") or {}
        available = sum(_st(r, "availableReplicas") for r in all_rs)
        total_spec = sum(_replicas(r) for r in all_rs)
        fields = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(_st(r, "replicas") for r in all_rs),
            "updatedReplicas": _st(new_rs, "replicas") if new_rs is not None else 0,
            "readyReplicas": sum(_st(r, "readyReplicas") for r in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total_spec - available),
        }
        new_status: dict[str, Any] = {
            k: v for k, v in fields.items() if v or k == "observedGeneration"
        }
        # The sum over the ReplicaSets, as long as each reports it (a pointer: zeros shown).
        counts = [(r.get("status") or {}).get("terminatingReplicas") for r in all_rs]
        if all(c is not None for c in counts):
            new_status["terminatingReplicas"] = sum(counts)
        if status.get("collisionCount"):
            new_status["collisionCount"] = status["collisionCount"]
        # A new list (sorted in place below); the condition dicts themselves are never edited.
        new_status["conditions"] = list(status.get("conditions") or [])
        if available >= replicas - max_unavailable(d):
            _set_cond(
                new_status,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            _set_cond(
                new_status,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        cur = _cond(new_status, "Progressing")
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else d["metadata"]["name"]
        if paused:
            if cur is None or cur.get("reason") != "DeploymentPaused":
                _set_cond(
                    new_status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused"
                )
        elif cur is not None and cur.get("reason") == "DeploymentPaused":
            _set_cond(
                new_status, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed"
            )
            cur = _cond(new_status, "Progressing")
        deadline = spec.get("progressDeadlineSeconds")
        complete_before = (
            new_status.get("replicas", 0) == new_status.get("updatedReplicas", 0)
            and cur is not None
            and cur.get("reason") == "NewReplicaSetAvailable"
        )
        if deadline is not None and not paused and not complete_before:
            n = lambda st, k: st.get(k, 0) or 0  # noqa: E731
            done = (
                n(new_status, "updatedReplicas") == replicas
                and n(new_status, "replicas") == replicas
                and n(new_status, "availableReplicas") == replicas
            )
            progressing = (
                n(new_status, "updatedReplicas") > n(old_status, "updatedReplicas")
                or (n(new_status, "replicas") - n(new_status, "updatedReplicas"))
                < (n(old_status, "replicas") - n(old_status, "updatedReplicas"))
                or n(new_status, "readyReplicas") > n(old_status, "readyReplicas")
                or n(new_status, "availableReplicas") > n(old_status, "availableReplicas")
            )
            if done:
                _set_cond(
                    new_status,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{rs_name}" has successfully progressed.',
                )
            elif progressing:
                keep = (
                    cur["lastTransitionTime"]
                    if cur is not None and cur["status"] == "True"
                    else None
                )
                _drop_cond(new_status, "Progressing")
                _set_cond(
                    new_status,
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" is progressing.',
                )
                if keep:
                    _cond(new_status, "Progressing")["lastTransitionTime"] = keep  # type: ignore[index]
            else:
                cur = _cond(new_status, "Progressing")
                if cur is not None and cur.get("reason") not in (
                    "NewReplicaSetAvailable",
                    "ProgressDeadlineExceeded",
                ):
                    due = parse_time(cur.get("lastUpdateTime")) + deadline
                    if time.time() > due:
                        _set_cond(
                            new_status,
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            f'ReplicaSet "{rs_name}" has timed out progressing.',
                        )
                    else:
                        self._schedule(
                            due + 0.05, "deploy", d["metadata"]["namespace"], d["metadata"]["name"]
                        )
        elif deadline is None:
            _drop_cond(new_status, "Progressing")
        # Conditions keep a stable order: Available first, like a real Deployment.
        new_status["conditions"].sort(
            key=lambda c: {"Available": 0, "Progressing": 1}.get(c["type"], 2)
        )
        old_ann = d["metadata"].get("annotations") or {}
        if new_status == old_status and annotations == old_ann:
            return
        new = _with_status(d, new_status)
        if annotations:
            new["metadata"]["annotations"] = annotations
        self._put_status(DEPLOYMENTS, d, _as_controller(DEPLOYMENTS, d, new))
