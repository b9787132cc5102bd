"""Test hooks: fault injection, the availability ledger and the request log.

These are how tests observe and perturb the emulator; none of them exists in a real cluster,
so they live outside the Kubernetes API paths (under ``/kubesim/`` over HTTP).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .resources import DEPLOYMENTS
from .store import Obj, Store

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@dataclass
class FaultRule:
    """One fault. ``None`` matchers match anything; ``count=None`` fires forever.

    ``status`` is the HTTP status to answer (429 gets ``Retry-After``); ``latency`` seconds
    are added before handling; ``after_write`` performs the write first and then answers
    ``status`` (default 500), the nastiest failure for a client that retries blindly.
    ``drop`` closes the connection without answering (a cut LIST, a load balancer reset):
    the client sees a connection error, not a status.
    """

    verb: str | None = None
    resource: str | None = None
    name: str | None = None
    namespace: str | None = None
    subresource: str | None = None
    status: int | None = None
    count: int | None = None
    latency: float = 0.0
    after_write: bool = False
    retry_after: int = 1
    message: str = "injected fault"
    drop: bool = False
    id: int = 0
    fired: int = 0

    def matches(
        self,
        verb: str,
        resource: str,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
    ) -> bool:
        if self.count is not None and self.fired >= self.count:
            return False
        if self.verb is not None and self.verb != verb:
            return False
        if self.resource is not None:
            res = self.resource
            if "/" in res:
                res, sub = res.split("/", 1)
                if sub != subresource:
                    return False
            if res != resource:
                return False
        if self.subresource is not None and self.subresource != subresource:
            return False
        if self.name is not None and self.name != name:
            return False
        return self.namespace is None or self.namespace == namespace

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """Rule list consulted by the HTTP server on every API request (first match wins)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def add(
        self,
        verb: str | None = None,
        resource: str | None = None,
        name: str | None = None,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        status: int | None = None,
        count: int | None = None,
        latency: float = 0.0,
        after_write: bool = False,
        retry_after: int = 1,
        message: str = "injected fault",
        drop: bool = False,
    ) -> FaultRule:
        if verb is not None and verb not in VERBS:
            raise ValueError(f"unknown verb {verb!r}; expected one of {VERBS}")
        if after_write and status is None:
            status = 500
        if drop and (status is not None or after_write):
            raise ValueError("a dropped connection has no status")
        if status is None and not latency and not drop:
            raise ValueError("a fault needs a status, a latency, a drop, or a combination")
        with self._lock:
            rule = FaultRule(
                verb,
                resource,
                name,
                namespace,
                subresource,
                status,
                count,
                latency,
                after_write,
                retry_after,
                message,
                drop,
                id=self._next_id,
            )
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def remove(self, rule: FaultRule | int) -> None:
        rid = rule if isinstance(rule, int) else rule.id
        with self._lock:
            self._rules = [r for r in self._rules if r.id != rid]

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(
        self,
        verb: str,
        resource: str,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
    ) -> FaultRule | None:
        """The first matching rule, counted as fired."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(verb, resource, namespace, name, subresource):
                    rule.fired += 1
                    return rule
        return None

    def cut_watches(self) -> int:
        """Close every open watch stream now; returns how many were cut."""
        return self._store.cut_watches()

    def compact(self) -> int:
        """Compact the watch history now (a later watch from an older RV gets 410 Gone)."""
        return self._store.compact()


def _same_resource(logged: str, resource: str) -> bool:
    """``deployments`` matches ``deployments`` and its subresources (``deployments/scale``)."""
    return logged == resource or logged.split("/", 1)[0] == resource


@dataclass
class Requests:
    """A snapshot of the request log: counts by (verb, resource, namespace, name)."""

    counts: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    # Wall-clock (``time.time``) of the first and last request per ``(verb, resource)``, so a
    # benchmark on the same machine can time "process start to first PATCH" from outside.
    first: dict[tuple[str, str], float] = field(default_factory=dict)
    last: dict[tuple[str, str], float] = field(default_factory=dict)

    def count(
        self,
        verb: str | None = None,
        resource: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
    ) -> int:
        """Requests matching every given filter. ``resource`` may be ``deployments/scale``."""
        return sum(
            n
            for (v, r, ns, nm), n in self.counts.items()
            if (verb is None or v == verb)
            and (resource is None or _same_resource(r, resource))
            and (name is None or nm == name)
            and (namespace is None or ns == namespace)
        )

    def per_object(self, verb: str, resource: str, namespace: str | None = None) -> dict[str, int]:
        """``{"namespace/name": count}`` of ``verb`` requests on named objects of ``resource``."""
        out: Counter[str] = Counter()
        for (v, r, ns, nm), n in self.counts.items():
            if (
                v == verb
                and _same_resource(r, resource)
                and nm
                and (namespace is None or ns == namespace)
            ):
                out[f"{ns}/{nm}" if ns else nm] += n
        return dict(out)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_list(self) -> list[dict[str, Any]]:
        return [
            {"verb": v, "resource": r, "namespace": ns, "name": nm, "count": n}
            for (v, r, ns, nm), n in sorted(self.counts.items())
        ]

    def times(self) -> list[dict[str, Any]]:
        """``[{verb, resource, first, last}]``: when each kind of request was first/last seen."""
        return [
            {"verb": v, "resource": r, "first": t, "last": self.last[(v, r)]}
            for (v, r), t in sorted(self.first.items())
        ]


@dataclass(frozen=True)
class WriteRecord:
    """One write the server received, in the journal (see :meth:`RequestLog.journal`).

    ``applied``: the store changed (true for an ``after_write`` fault, false for a write
    refused by a fault or an API error). ``images`` and ``change_cause`` are read from the
    request body (a container image patch and its ``kubernetes.io/change-cause``).
    """

    at: float
    verb: str
    resource: str
    namespace: str
    name: str
    applied: bool
    images: tuple[str, ...] = ()
    change_cause: str = ""


def write_details(body: bytes) -> tuple[tuple[str, ...], str]:
    """Container images and change-cause a write's JSON body names (empty when unreadable)."""
    try:
        doc = json.loads(body or b"{}")
        annotations = doc.get("metadata", {}).get("annotations") or {}
        cause = str(annotations.get("kubernetes.io/change-cause", ""))
        pod_spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        images = tuple(
            c["image"] for c in pod_spec.get("containers") or () if isinstance(c.get("image"), str)
        )
    except (ValueError, AttributeError, TypeError):
        return (), ""  # a JSON patch (a list), YAML, or an odd shape: nothing to report
    return images, cause


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class RequestLog:
    """Counts every API request the server answered (including faulted ones).

    With the journal on (:meth:`start_journal`), every write is also kept in order as a
    :class:`WriteRecord`, so a test can tell which requests changed anything.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str, str]] = Counter()
        self._first: dict[tuple[str, str], float] = {}
        self._last: dict[tuple[str, str], float] = {}
        self._journal: list[WriteRecord] | None = None

    def record(self, verb: str, resource: str, namespace: str | None, name: str | None) -> None:
        now = time.time()
        with self._lock:
            self._counts[(verb, resource, namespace or "", name or "")] += 1
            self._first.setdefault((verb, resource), now)
            self._last[(verb, resource)] = now

    @property
    def journaling(self) -> bool:
        return self._journal is not None

    def start_journal(self) -> None:
        """Keep every write from now on (until :meth:`reset`)."""
        with self._lock:
            self._journal = []

    def record_write(
        self,
        verb: str,
        resource: str,
        namespace: str | None,
        name: str | None,
        *,
        applied: bool,
        body: bytes,
    ) -> None:
        if self._journal is None:
            return
        images, cause = write_details(body) if body else ((), "")
        entry = WriteRecord(
            time.time(), verb, resource, namespace or "", name or "", applied, images, cause
        )
        with self._lock:
            if self._journal is not None:
                self._journal.append(entry)

    def journal(self) -> list[WriteRecord]:
        with self._lock:
            return list(self._journal or ())

    def snapshot(self) -> Requests:
        with self._lock:
            return Requests(Counter(self._counts), dict(self._first), dict(self._last))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._first.clear()
            self._last.clear()
            self._journal = None


class AvailabilityLedger:
    """Per Deployment ``namespace/name``: the minimum ``status.availableReplicas`` observed on
    any stored version of it whose ``spec.replicas >= 1``, since creation or the last reset.

    Fed by a store listener, so it sees every version the controllers or clients write.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._min: dict[str, int] = {}
        store.listeners.append(self._on_event)

    def _on_event(self, type_key: str, etype: str, obj: Obj, old: Obj | None) -> None:
        if type_key != DEPLOYMENTS.key or etype == "DELETED":
            return
        self._observe(obj)

    def _observe(self, obj: Obj) -> None:
        if ((obj.get("spec") or {}).get("replicas", 1) or 0) < 1:
            return
        meta = obj["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        available = (obj.get("status") or {}).get("availableReplicas", 0) or 0
        cur = self._min.get(key)
        if cur is None or available < cur:
            self._min[key] = available

    def snapshot(self, namespace: str | None = None) -> dict[str, int]:
        with self._store.lock:
            return {
                k: v
                for k, v in self._min.items()
                if namespace is None or k.split("/", 1)[0] == namespace
            }

    def reset(self, namespaces: Iterable[str] | None = None) -> None:
        """Restart the minimum from every Deployment's current availability."""
        with self._store.lock:
            spaces = set(namespaces) if namespaces is not None else None
            self._min = {
                k: v
                for k, v in self._min.items()
                if spaces is not None and k.split("/", 1)[0] not in spaces
            }
            for obj in self._store.iter(DEPLOYMENTS.key):
                if spaces is None or obj["metadata"]["namespace"] in spaces:
                    self._observe(obj)
