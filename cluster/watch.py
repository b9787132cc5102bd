"""One watch on the site Deployments, so waiting for a rollout is driven by events, not polls.

``SiteWatch`` is a small informer: one paged LIST of ``subscribie=site``, then one watch
resumed from that LIST's ``resourceVersion`` (bookmarks on), applied to an in-memory cache of
the Deployments by slug. It talks to Kubernetes only through ``Cluster`` (the gateway stays
the one module that knows the client).

Invariants:
- The cache only ever holds objects the API server sent (LIST items, watch events, our own
  PATCH answers are not mixed in), so a snapshot read from it with ``expected_generation``
  (the generation our PATCH returned) means exactly what a LIST read would: a status from
  before the patch reads as in progress (``cluster.status``).
- A watch that ends normally (server timeout) is resumed from the last resourceVersion seen;
  a 410 Gone (history compacted, as an HTTP answer or an ERROR event) or a cut stream falls
  back to a fresh LIST. While that fails it retries with exponential backoff, and ``live`` is
  False, so callers fall back to their own LIST. A waiter that hears nothing for
  ``RESYNC_SECONDS`` has it re-list too (self-healing; at most one LIST per that period).
- ``wait`` never sleeps a fixed period: it returns as soon as the watched Deployments reach
  the asked-for state, the timeout passes, or the watch stops being live.
- Decode less: an event is kept as its raw JSON line and decoded only when read, so of the
  several events a rollout writes per Deployment (our patch, then each controller status
  step) only those someone looks at are decoded, and then only the fields the gate reads
  (``cluster.wire``: most of a Deployment's bytes are managedFields' ``fieldsV1``, skipped).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cluster.status import DeploymentSnapshot, rollout_state, snapshot
from cluster.wire import decode_event_object, slim

if TYPE_CHECKING:
    from cluster.gateway import Cluster

logger = logging.getLogger(__name__)

__all__ = ["SiteWatch"]

WATCH_TIMEOUT_SECONDS = 290  # the server ends each watch after this; we resume it
MAX_BACKOFF = 5.0
COALESCE_SECONDS = 0.01  # at most this late: the wave's last event, then its decode
# Waiters that wait this long in all without hearing of a change to their Deployments have the
# watch re-list: a cache that somehow missed an event must not hold a wave until its deadline.
RESYNC_SECONDS = 30.0
# Read from an event's raw line without decoding it: its type, and the object's name and
# resourceVersion (the first of each: metadata's; nested copies are JSON-escaped strings).
_EVENT_TYPE = re.compile(rb'^\{"type":"([A-Z]+)"')
_FIRST_NAME = re.compile(rb'"name":"([^"\\]+)"')
_FIRST_RV = re.compile(rb'"resourceVersion":"([^"\\]+)"')


class _Waiter:
    """One caller waiting on some slugs: the watch thread marks the slugs that changed."""

    def __init__(self, slugs: Iterable[str], wake_on_new: bool):
        self.slugs = set(slugs)
        self.wake_on_new = wake_on_new
        self.dirty: set[str] = set()
        self.new_slug = False


class SiteWatch:
    """A cache of the site Deployments kept current by one watch (see module docstring).

    Thread-safe. ``start`` LISTs in the background thread; ``live`` turns True once synced.
    """

    def __init__(self, cluster: Cluster, *, watch_timeout: int = WATCH_TIMEOUT_SECONDS):
        self._cluster = cluster
        self._watch_timeout = watch_timeout
        self._cond = threading.Condition()
        self._items: dict[str, dict[str, Any] | bytes] = {}  # by name; bytes: not decoded yet
        self._rv = ""
        self._synced = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._waiters: list[_Waiter] = []
        self.lists = 0  # LISTs made (the first, then one per 410 or cut stream)
        self.failures = 0  # LISTs or watches that failed
        self._quiet = 0.0  # seconds waiters waited since they last heard of a change
        self.watches = 0  # watch requests made

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, *, sync_timeout: float = 0.0) -> SiteWatch:
        """Start the watch thread; with ``sync_timeout``, wait up to that long for the LIST."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="site-watch", daemon=True)
            self._thread.start()
        if sync_timeout:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._synced or self.failures or self._stopped.is_set(), sync_timeout
                )
        return self

    def _resync(self) -> None:
        """Re-list now: end the current stream, so the watch thread falls back to a LIST."""
        logger.info("site watch: nothing heard for %.0fs; re-listing", self._quiet)
        self._quiet = 0.0
        self._cluster.close_watches()

    def stop(self) -> None:
        self._stopped.set()
        self._cluster.close_watches()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SiteWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def live(self) -> bool:
        """True while the cache is synced and a watch is keeping it current."""
        return self._synced and not self._stopped.is_set()

    # -- reads ---------------------------------------------------------------------------------

    def snapshots(
        self, slugs: Iterable[str], *, expected_generations: Mapping[str, int] | None = None
    ) -> dict[str, DeploymentSnapshot]:
        """What ``Cluster.list_sites(slugs, expected_generations=...)`` returns, from the cache."""
        expected = expected_generations or {}
        with self._cond:
            items = {slug: self._item(slug) for slug in slugs}
        return {
            slug: snapshot(item, expected_generation=expected.get(slug))
            for slug, item in items.items()
            if item is not None
        }

    def wait(
        self,
        expected_generations: Mapping[str, int],
        *,
        timeout: float,
        settle_all: bool = True,
        wake_on_new: bool = False,
    ) -> bool:
        """Block until the Deployments of ``expected_generations`` can be settled.

        ``settle_all``: until every one is rolled out or failed (any failure, or one missing,
        wakes at once, so a failure budget is judged without delay); otherwise until any one
        is. ``wake_on_new``: also wake when a site Deployment not in the set appears. Returns
        True if woken by the cluster, False on timeout or when the watch stopped being live.
        """
        entered = time.monotonic()
        deadline = entered + max(0.0, timeout)
        if self._quiet > RESYNC_SECONDS:
            self._resync()
        pending = dict(expected_generations)
        waiter = _Waiter(pending, wake_on_new)
        with self._cond:
            self._waiters.append(waiter)
            try:
                waiter.dirty = set(pending)  # judge the current state first
                while self.live:
                    dirty, waiter.dirty = waiter.dirty, set()
                    if dirty:
                        self._quiet, entered = 0.0, time.monotonic()
                    for slug in dirty:
                        if slug not in pending:
                            continue
                        item = self._item(slug)
                        if item is None:
                            return True  # missing: the caller settles it now
                        state = rollout_state(item, expected_generation=pending[slug])
                        if state.failed:
                            return True
                        if state.done:
                            del pending[slug]
                            if not settle_all:
                                return True
                    if not pending or waiter.new_slug:
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    if not waiter.dirty:
                        self._cond.wait(remaining)
                    # Let the events of this moment gather (a rollout writes several per
                    # Deployment), so each Deployment is decoded once, not once per event.
                    gathered = min(time.monotonic() + COALESCE_SECONDS, deadline)
                    while (left := gathered - time.monotonic()) > 0:
                        self._cond.wait(left)
                return False
            finally:
                self._waiters.remove(waiter)
                self._quiet += time.monotonic() - entered

    def _item(self, slug: str) -> dict[str, Any] | None:
        """The cached Deployment of ``slug``, decoding its raw event now if need be (caller
        holds the lock)."""
        item = self._items.get(slug)
        if isinstance(item, bytes):
            item = decode_event_object(item)
            self._items[slug] = item
        return item

    # -- the watch thread ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.05
        need_list = True
        while not self._stopped.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                self.watches += 1
                for event in self._cluster.watch_deployments(
                    self._rv, timeout_seconds=self._watch_timeout, raw=True
                ):
                    if self._stopped.is_set():
                        return
                    if not self._apply(event):
                        need_list = True  # 410 Gone as an ERROR event
                        break
                    backoff = 0.05
            except Exception as exc:  # any failure: resync from a fresh LIST
                if self._stopped.is_set():
                    return
                status = getattr(exc, "status", None)
                logger.info("site watch: %s; re-listing in %.2fs", exc, backoff)
                need_list = True
                self.failures += 1
                if status != 410:
                    self._set_synced(False)
                    self._stopped.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)

    def _relist(self) -> None:
        items, rv = self._cluster.list_site_deployments()
        self.lists += 1
        # Keyed by name, as the watch's raw events are (a site's objects are named <slug>).
        fresh = {(item.get("metadata") or {}).get("name", ""): item for item in items}
        with self._cond:
            changed = set(fresh) | set(self._items)
            new = set(fresh) - set(self._items) if self._synced else set()
            self._items = fresh
            self._rv = rv
            self._synced = True
            self._mark(changed, new=new)
            self._cond.notify_all()

    def _apply(self, line: bytes) -> bool:
        """Apply one watch event (its raw line); False when it says the resourceVersion is
        gone (410). ADDED and MODIFIED events are stored undecoded (see ``_item``)."""
        kind_match = _EVENT_TYPE.match(line)
        name_match = _FIRST_NAME.search(line)
        rv_match = _FIRST_RV.search(line)
        kind = kind_match.group(1).decode() if kind_match else ""
        if kind not in ("ADDED", "MODIFIED") or name_match is None or rv_match is None:
            return self._apply_decoded(json.loads(line))
        slug = name_match.group(1).decode()
        with self._cond:
            self._rv = rv_match.group(1).decode()
            is_new = slug not in self._items
            self._items[slug] = line
            self._mark({slug}, new={slug} if is_new else set())
            self._cond.notify_all()
        return True

    def _apply_decoded(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                return False
            raise RuntimeError(f"watch error: {obj.get('message') or obj}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        with self._cond:
            if rv:
                self._rv = rv
            if kind == "BOOKMARK":
                return True
            slug = (obj.get("metadata") or {}).get("name", "")
            is_new = slug not in self._items
            if kind == "DELETED":
                self._items.pop(slug, None)
            else:
                self._items[slug] = slim(obj)
            self._mark({slug}, new={slug} if is_new and kind != "DELETED" else set())
            self._cond.notify_all()
        return True

    def _mark(self, slugs: set[str], *, new: set[str]) -> None:
        """Tell waiters which of their slugs changed (caller holds the lock)."""
        for waiter in self._waiters:
            waiter.dirty |= slugs & waiter.slugs
            if waiter.wake_on_new and new - waiter.slugs:
                waiter.new_slug = True

    def _set_synced(self, synced: bool) -> None:
        with self._cond:
            self._synced = synced
            self._cond.notify_all()
