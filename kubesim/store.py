"""The in-memory object store: objects, resourceVersions, event history and watchers.

Invariants:

* Stored objects are immutable. Every write stores a *new* dict; readers may hold references
  without copying, and the JSON encoding of an object is cached until it is replaced.
* ``resourceVersion`` is one cluster-wide counter; every create, update and delete takes the
  next value, so event history is totally ordered by it.
* All mutations happen under ``Store.lock`` (re-entrant), and listeners run under it too, so
  they must only record work (e.g. mark a key dirty), never block.
* History keeps the most recent events; a watch starting before the oldest retained one gets
  410 Gone, as from a compacted etcd.
"""

from __future__ import annotations

import bisect
import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .errors import gone

Obj = dict[str, Any]
Listener = Callable[[str, str, Obj, Obj | None], None]
# The real server's words for a continue token older than the retained history.
CONTINUE_TOO_OLD = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)


_encode = msgspec.json.encode
_decode = msgspec.json.decode


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON: the bytes ``json.dumps(obj, separators=(",", ":"),
    ensure_ascii=False)`` gives (a float's exponent lacks its "+", as Go writes it), about 8x
    faster. Encoding is most of what kubesim does per request and per watch event."""
    try:
        return _encode(obj)
    except (TypeError, OverflowError):  # a value msgspec will not encode: say it as json does
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes | str) -> Any:
    """Parse JSON (the same values ``json.loads`` gives, in about half the time)."""
    try:
        return _decode(data)
    except msgspec.DecodeError:  # the stdlib's error (and its message) for bad input
        return json.loads(data)


def deep_copy(obj: Any) -> Any:
    """A private copy of a JSON document (what ``json.loads(json.dumps(obj))`` gives)."""
    return loads(dumps(obj))


@dataclass
class Event:
    rv: int
    type_key: str
    type: str  # ADDED / MODIFIED / DELETED
    obj: Obj
    old: Obj | None


@dataclass(eq=False)
class Watcher:
    """One open watch. Events are queued by writers and drained by the serving thread."""

    type_key: str
    namespace: str | None
    queue: queue.SimpleQueue[Event | None] = field(default_factory=queue.SimpleQueue)
    closed: bool = False

    def offer(self, event: Event) -> None:
        if self.namespace is None or event.obj["metadata"].get("namespace", "") == self.namespace:
            self.queue.put(event)

    def cut(self) -> None:
        """Terminate the stream (fault injection and shutdown)."""
        self.closed = True
        self.queue.put(None)


class Store:
    def __init__(self, history_limit: int = 200_000) -> None:
        self.lock = threading.RLock()
        self._rv = 1000
        # type key -> namespace ("" when cluster scoped) -> name -> object
        self._objs: dict[str, dict[str, dict[str, Obj]]] = {}
        self._json: dict[int, tuple[Obj, bytes]] = {}
        # owner uid -> {(type key, namespace, name)}
        self._dependents: dict[str, set[tuple[str, str, str]]] = {}
        self._history: list[Event] = []
        self._history_rvs: list[int] = []
        self._history_limit = history_limit
        self._compacted_rv = 0
        self._watchers: dict[str, list[Watcher]] = {}
        self.listeners: list[Listener] = []

    # -- reads -------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, type_key: str, namespace: str, name: str) -> Obj | None:
        return self._objs.get(type_key, {}).get(namespace, {}).get(name)

    def iter(self, type_key: str, namespace: str | None = None) -> Iterator[Obj]:
        """Objects of a type, sorted by (namespace, name) - the order of a real list."""
        by_ns = self._objs.get(type_key, {})
        with self.lock:
            spaces = [namespace] if namespace is not None else sorted(by_ns)
            snapshot = [(ns, sorted(by_ns.get(ns, {}).items())) for ns in spaces]
        for _ns, items in snapshot:
            for _name, obj in items:
                yield obj

    def iter_at(self, type_key: str, namespace: str | None, rv: int) -> list[Obj]:
        """``iter`` as of resourceVersion ``rv``, in the same (namespace, name) order: today's
        objects with every later event of the type undone, newest event first (what etcd's
        MVCC serves a paged LIST's later pages).

        Raises 410 Expired when history was compacted past ``rv``, as the real server does
        for a continue token that old.
        """
        with self.lock:
            if rv < self._compacted_rv:
                raise gone(CONTINUE_TOO_OLD)
            objs = {
                (ns, name): obj
                for ns, by_name in self._objs.get(type_key, {}).items()
                if namespace is None or ns == namespace
                for name, obj in by_name.items()
            }
            start = bisect.bisect_right(self._history_rvs, rv)
            for event in reversed(self._history[start:]):
                if event.type_key != type_key:
                    continue
                meta = event.obj["metadata"]
                key = (meta.get("namespace", ""), meta["name"])
                if namespace is not None and key[0] != namespace:
                    continue
                if event.type == "ADDED":
                    objs.pop(key, None)
                elif event.type == "MODIFIED" and event.old is not None:
                    objs[key] = event.old
                elif event.type == "DELETED":
                    objs[key] = event.old if event.old is not None else event.obj
        return [objs[key] for key in sorted(objs)]

    def count(self, type_key: str, namespace: str | None = None) -> int:
        by_ns = self._objs.get(type_key, {})
        if namespace is not None:
            return len(by_ns.get(namespace, {}))
        return sum(len(v) for v in by_ns.values())

    def dependents(self, owner_uid: str) -> list[tuple[str, str, str]]:
        with self.lock:
            return sorted(self._dependents.get(owner_uid, ()))

    def encode(self, obj: Obj) -> bytes:
        """JSON bytes of a stored object, cached while the object is current."""
        hit = self._json.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        data = dumps(obj)
        meta = obj.get("metadata") or {}
        # Cache only current objects: superseded ones (watch history) would never be evicted.
        for bucket in self._objs.values():
            if bucket.get(meta.get("namespace", ""), {}).get(meta.get("name")) is obj:
                self._json[id(obj)] = (obj, data)
                break
        return data

    def clone(self, obj: Obj) -> Obj:
        """A private deep copy of ``obj``; parsed from the cached encoding when there is one.

        Same result as ``json.loads(json.dumps(obj))`` (the cached bytes are that JSON, only
        compact), but skips re-encoding an object whose bytes were just sent to a client.
        """
        hit = self._json.get(id(obj))
        if hit is not None and hit[0] is obj:
            result: Obj = loads(hit[1])
            return result
        return deep_copy(obj)

    # -- writes ------------------------------------------------------------------------
    def next_rv(self) -> int:
        with self.lock:
            self._rv += 1
            return self._rv

    def put(self, type_key: str, obj: Obj) -> Obj:
        """Store ``obj`` (a fresh dict the store owns from now on) with a new resourceVersion."""
        with self.lock:
            meta = obj["metadata"]
            ns, name = meta.get("namespace", ""), meta["name"]
            rv = self.next_rv()
            meta["resourceVersion"] = str(rv)
            bucket = self._objs.setdefault(type_key, {}).setdefault(ns, {})
            old = bucket.get(name)
            bucket[name] = obj
            if old is not None:
                self._json.pop(id(old), None)
                self._unindex(type_key, old)
            self._index(type_key, obj)
            self._emit(Event(rv, type_key, "MODIFIED" if old is not None else "ADDED", obj, old))
            return obj

    def remove(self, type_key: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            bucket = self._objs.get(type_key, {}).get(namespace, {})
            old = bucket.pop(name, None)
            if old is None:
                return None
            self._json.pop(id(old), None)
            self._unindex(type_key, old)
            rv = self.next_rv()
            gone_obj = dict(old)
            gone_obj["metadata"] = dict(old["metadata"], resourceVersion=str(rv))
            self._emit(Event(rv, type_key, "DELETED", gone_obj, old))
            return gone_obj

    def _index(self, type_key: str, obj: Obj) -> None:
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or ():
            self._dependents.setdefault(ref.get("uid", ""), set()).add(
                (type_key, meta.get("namespace", ""), meta["name"])
            )

    def _unindex(self, type_key: str, obj: Obj) -> None:
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or ():
            deps = self._dependents.get(ref.get("uid", ""))
            if deps is not None:
                deps.discard((type_key, meta.get("namespace", ""), meta["name"]))
                if not deps:
                    del self._dependents[ref.get("uid", "")]

    def _emit(self, event: Event) -> None:
        self._history.append(event)
        self._history_rvs.append(event.rv)
        if len(self._history) > 2 * self._history_limit:
            cut = len(self._history) - self._history_limit
            self._compacted_rv = self._history_rvs[cut - 1]
            del self._history[:cut]
            del self._history_rvs[:cut]
        for w in self._watchers.get(event.type_key, ()):
            w.offer(event)
        for listener in self.listeners:
            listener(event.type_key, event.type, event.obj, event.old)

    def compact(self) -> int:
        """Drop all watch history up to now, as an etcd compaction does; returns that RV.

        A watch from an older resourceVersion then gets 410 Gone.
        """
        with self.lock:
            self._compacted_rv = self._rv
            self._history.clear()
            self._history_rvs.clear()
            return self._compacted_rv

    # -- watches -----------------------------------------------------------------------
    def watch(
        self, type_key: str, namespace: str | None, since_rv: int | None
    ) -> tuple[Watcher, list[Event]]:
        """Register a watcher; returns it with the retained events after ``since_rv``.

        ``since_rv=None`` means "from now". Raises 410 Gone when history was compacted past it.
        """
        with self.lock:
            w = Watcher(type_key, namespace)
            backlog: list[Event] = []
            if since_rv is not None:
                if since_rv < self._compacted_rv:
                    raise gone(f"too old resource version: {since_rv} ({self._compacted_rv + 1})")
                start = bisect.bisect_right(self._history_rvs, since_rv)
                backlog = [
                    e
                    for e in self._history[start:]
                    if e.type_key == type_key
                    and (namespace is None or e.obj["metadata"].get("namespace", "") == namespace)
                ]
            self._watchers.setdefault(type_key, []).append(w)
            return w, backlog

    def unwatch(self, w: Watcher) -> None:
        with self.lock:
            lst = self._watchers.get(w.type_key, [])
            if w in lst:
                lst.remove(w)

    def cut_watches(self) -> int:
        with self.lock:
            n = 0
            for lst in self._watchers.values():
                for w in lst:
                    w.cut()
                    n += 1
            return n

    def open_watches(self, type_key: str | None = None, namespace: str | None = None) -> int:
        """Open watch streams, optionally only those of one type and/or one namespace."""
        with self.lock:
            return sum(
                1
                for key, lst in self._watchers.items()
                if type_key is None or key == type_key
                for w in lst
                if namespace is None or w.namespace == namespace
            )
