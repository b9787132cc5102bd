"""The signup side of a chaos run: documents written to CouchDB, imported by ``signups_sync``
while the CouchDB-compatible server is frozen (SIGSTOP) and thawed (SIGCONT) mid-sync.

Invariant checked at the end (``lost_or_duplicated``): every document ever written has exactly
one Signup row, withdrawn when the document was deleted, else at the document's current _rev.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field

from django.db import connections

DATABASE = "signups"
SYNC_TIMEOUT = 1.0  # client timeout: a freeze longer than this fails the sync (and it resumes)
SYNC_BATCH = 5  # small batches: a sync takes many round trips, so a freeze lands mid-sync


@dataclass
class SyncOutcome:
    ok: bool
    detail: str


@dataclass
class SignupFeed:
    """Writes signup documents and runs syncs; remembers every id it wrote or deleted."""

    server: object  # tests.fixtures.couchdb.CouchServer (started)
    rng: random.Random
    written: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    outcomes: list[SyncOutcome] = field(default_factory=list)
    _next: int = 0

    def client(self, timeout: float = 10.0):
        from sites.couchdb import CouchDB

        return CouchDB(self.server.url, DATABASE, timeout=timeout)

    def create(self) -> None:
        with self.client() as client:
            client.ensure_database()

    def write_batch(self, new: int) -> None:
        """``new`` documents, plus updates of a few earlier ones and a deletion or two."""
        docs = []
        for _ in range(new):
            doc_id = f"chaos-{self._next:06d}"
            self._next += 1
            docs.append(
                {
                    "_id": doc_id,
                    "queue_state": "deploy",
                    "company": {"name": f"Chaos Shop {doc_id}"},
                    "users": [f"{doc_id}@example.com"],
                }
            )
        live = sorted(self.written - self.deleted)
        changed = self.rng.sample(live, min(len(live), max(1, new // 10))) if live else []
        with self.client() as client:
            for doc_id in changed[:-1] if len(changed) > 1 else changed:
                current = client.get(doc_id)
                current["company"] = {"name": f"Renamed {doc_id} {self.rng.randint(0, 9999)}"}
                docs.append(current)
            if len(changed) > 1:
                doc_id = changed[-1]
                docs.append({"_id": doc_id, "_rev": client.get(doc_id)["_rev"], "_deleted": True})
                self.deleted.add(doc_id)
            refused = [r for r in client.bulk_docs(docs) if "error" in r]
        if refused:
            raise RuntimeError(f"CouchDB refused signup documents: {refused[:3]}")
        self.written.update(d["_id"] for d in docs)

    def sync(self) -> SyncOutcome:
        """One ``signups_sync`` run with a short client timeout; never raises."""
        from sites.couchdb import CouchDBError
        from sites.sync import SyncLocked, signups_sync

        try:
            with self.client(timeout=SYNC_TIMEOUT) as client:
                summary = signups_sync(client=client, batch_size=SYNC_BATCH)
            outcome = SyncOutcome(True, summary.line())
        except (CouchDBError, SyncLocked) as exc:
            outcome = SyncOutcome(False, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # e.g. the database: reported, and the invariant decides
            outcome = SyncOutcome(False, f"unexpected {type(exc).__name__}: {exc}")
        finally:
            connections.close_all()  # this thread's connections
        self.outcomes.append(outcome)
        return outcome

    def pause_mid_sync(self, docs: int, stop_after: float, stopped_for: float) -> str:
        """Write ``docs`` documents, start a sync, freeze CouchDB ``stop_after`` seconds in for
        ``stopped_for`` seconds, thaw it and wait for the sync. Returns what happened."""
        self.write_batch(docs)
        syncing = threading.Thread(target=self.sync, name="chaos-sync", daemon=True)
        syncing.start()
        time.sleep(stop_after)
        mid_sync = syncing.is_alive()
        pid = self.server._proc.pid  # the node process
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(stopped_for)
        finally:
            os.kill(pid, signal.SIGCONT)
        syncing.join(timeout=60)
        last = self.outcomes[-1] if self.outcomes else SyncOutcome(False, "no outcome")
        where = "mid-sync" if mid_sync else "after the sync"
        return f"{where} for {stopped_for}s: {'ok' if last.ok else last.detail[:60]}"

    def sync_until_done(self, attempts: int = 10) -> SyncOutcome:
        """The final import, once CouchDB is healthy again."""
        outcome = SyncOutcome(False, "not run")
        for _ in range(attempts):
            outcome = self.sync()
            if outcome.ok:
                return outcome
            time.sleep(0.5)
        return outcome

    def current_revs(self) -> dict[str, str]:
        """``{id: _rev}`` of every live document in CouchDB now."""
        with self.client() as client:
            revs: dict[str, str] = {}
            since = None
            while True:
                batch = client.changes(since=since, limit=500)
                for change in batch.results:
                    if change.deleted:
                        revs.pop(change.id, None)
                    else:
                        revs[change.id] = str((change.doc or {}).get("_rev") or change.rev)
                if len(batch.results) < 500:
                    return revs
                since = batch.last_seq
