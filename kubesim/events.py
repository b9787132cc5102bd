"""core/v1 Events as the controllers' legacy event recorders write them.

kube-controller-manager's deployment and replicaset controllers record events through
client-go's ``tools/record`` (source ``deployment-controller`` / ``replicaset-controller``);
``kubectl describe`` finds them by listing core/v1 events with an ``involvedObject`` field
selector, and ``kubectl get events`` lists them. An event is built like ``makeEvent``:

* name ``<object name>.<unix nanoseconds in hex>``, in the object's namespace;
* ``involvedObject`` = the object's reference (kind, namespace, name, uid, apiVersion,
  resourceVersion); ``firstTimestamp`` = ``lastTimestamp`` = now, ``count: 1``;
* ``source.component`` and ``reportingComponent`` = the controller, ``reportingInstance`` and
  ``source.host`` empty (the controllers set no host), ``eventTime: null``.

As the recorder's ``EventCorrelator`` does, an event identical to an earlier one (same source,
object, type, reason and message) is not recorded again: the earlier one gets ``count + 1`` and
a new ``lastTimestamp`` (``kubectl describe`` shows ``(x2 over 5m)``). The correlator's
aggregation of many *similar* events and the API server's one-hour event TTL are not emulated.

Cheap by design (the controllers call this under the store lock, on their hot path): the event
is written straight to the store, skipping defaulting and validation that a dict built here
cannot fail.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import OrderedDict
from typing import Any

from .resources import EVENTS
from .store import Obj, Store

_CACHE_SIZE = 4096  # the correlator's LRU size (maxLruCacheEntries)


def _micro_now() -> str:
    """A metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


class EventRecorder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._last_ns = 0
        # Event uids: a random (version 4 shaped) prefix and a counter, cheaper than uuid4()
        # per event and as unique.
        r = uuid.uuid4().hex
        self._uid_prefix = f"{r[:8]}-{r[8:12]}-4{r[13:16]}-8{r[17:20]}-"
        self._uids = itertools.count(1)
        # correlation key -> (namespace, event name)
        self._seen: OrderedDict[tuple[Any, ...], tuple[str, str]] = OrderedDict()

    def _unix_nano(self) -> int:
        now = time.time_ns()
        if now <= self._last_ns:  # names must be unique even within one clock tick
            now = self._last_ns + 1
        self._last_ns = now
        return now

    def record(
        self, obj: Obj, event_type: str, reason: str, message: str, component: str, now: str
    ) -> Obj:
        """Record an event about stored object ``obj``; ``now`` is an RFC 3339 timestamp."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        ref = {
            "kind": obj.get("kind", ""),
            "namespace": meta.get("namespace", ""),
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "apiVersion": obj.get("apiVersion", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if not ref["namespace"]:
            del ref["namespace"]
        key = (component, ref["kind"], ns, ref["name"], ref["uid"], event_type, reason, message)
        with self.store.lock:
            seen = self._seen.get(key)
            if seen is not None:
                old = self.store.get(EVENTS.key, *seen)
                if old is not None:
                    self._seen.move_to_end(key)
                    new = dict(old)
                    new["metadata"] = dict(old["metadata"])
                    new["count"] = (old.get("count") or 1) + 1
                    new["lastTimestamp"] = now
                    new["involvedObject"] = ref
                    return self.store.put(EVENTS.key, new)
            name = f"{meta['name']}.{self._unix_nano():x}"
            event = {
                "kind": "Event",
                "apiVersion": "v1",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "uid": f"{self._uid_prefix}{next(self._uids):012x}",
                    "creationTimestamp": now,
                },
                "involvedObject": ref,
                "reason": reason,
                "message": message,
                "source": {"component": component},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "type": event_type,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": "",
            }
            self._seen[key] = (ns, name)
            if len(self._seen) > _CACHE_SIZE:
                self._seen.popitem(last=False)
            return self.store.put(EVENTS.key, event)

    def scheduled(self, pod: Obj, node: str) -> Obj:
        """The scheduler's ``Scheduled`` event, as core/v1 shows an events.k8s.io/v1 event.

        kube-scheduler records through ``tools/events`` (the events.k8s.io API): ``eventTime``
        and ``action`` are set, ``firstTimestamp``/``lastTimestamp``/``count`` and ``source``
        are not, ``reportingInstance`` is ``default-scheduler-<host>``.
        """
        meta = pod["metadata"]
        ns = meta.get("namespace") or "default"
        event = {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {
                "name": f"{meta['name']}.{self._unix_nano():x}",
                "namespace": ns,
                "uid": f"{self._uid_prefix}{next(self._uids):012x}",
                "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": ns,
                "resourceVersion": meta.get("resourceVersion", ""),
                "uid": meta.get("uid", ""),
            },
            "reason": "Scheduled",
            "message": f"Successfully assigned {ns}/{meta['name']} to {node}",
            "source": {},
            "firstTimestamp": None,
            "lastTimestamp": None,
            "type": "Normal",
            "eventTime": _micro_now(),
            "action": "Binding",
            "reportingComponent": "default-scheduler",
            "reportingInstance": "default-scheduler-kubesim",
        }
        with self.store.lock:
            return self.store.put(EVENTS.key, event)
