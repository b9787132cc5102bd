"""Reading a ``_changes`` feed a few pages ahead of whoever stores it.

Reading (CouchDB's time, the socket, JSON decoding) and storing (validation, the database)
then overlap instead of adding up. Pages follow one another (each one's ``last_seq`` is the
next one's ``since``), so they cannot be read in parallel; what a reader thread can do is keep
the chain of reads going while the consumer stores, instead of starting each read only when the
consumer asks for it. Reads and stores take about as long as each other, and each varies page
by page; two pages of slack keep either from waiting on the other's slow page.

Invariants:
- Pages come out in feed order, each exactly once; after a short page (fewer than ``limit``
  results: the end of the feed for now) or an error, nothing more is read. An error is raised
  to the consumer in the place of the page that failed, after the pages read before it.
- The reader thread only calls ``client.changes``: it never touches the database.
- At most ``ahead`` pages wait unconsumed; a page read but never stored is simply read again by
  the next run, since only a stored page moves the checkpoint.
"""

from __future__ import annotations

import queue
import threading

from sites.couchdb import ChangesBatch, CouchDB, Seq


class FeedReader:
    """``client.changes`` pages from ``since`` on, read on a thread of its own.

    Use as a context manager: leaving it stops the thread (waiting for a read in flight).
    """

    def __init__(self, client: CouchDB, *, since: Seq | None, limit: int, ahead: int = 2) -> None:
        self._client, self._since, self._limit = client, since, limit
        self._pages: queue.Queue[ChangesBatch | BaseException] = queue.Queue(maxsize=ahead)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, name="signups-feed", daemon=True)

    def __enter__(self) -> FeedReader:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()  # a read waiting for room in the queue sees it within 50 ms
        self._thread.join()

    def next_page(self) -> ChangesBatch:
        """The next page; raises what reading it raised."""
        page = self._pages.get()
        if isinstance(page, BaseException):
            raise page
        return page

    def _read(self) -> None:
        since = self._since
        while not self._stopped.is_set():
            try:
                page = self._client.changes(since=since, limit=self._limit)
            except BaseException as exc:  # the consumer raises it, in the failed page's place
                self._put(exc)
                return
            self._put(page)
            if len(page.results) < self._limit:
                return
            since = page.last_seq

    def _put(self, item: ChangesBatch | BaseException) -> None:
        while not self._stopped.is_set():
            try:
                self._pages.put(item, timeout=0.05)
                return
            except queue.Full:
                pass
