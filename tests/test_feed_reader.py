"""sites.feed.FeedReader against the real npm CouchDB-compatible server (no mocks)."""

from __future__ import annotations

import threading
import time

import pytest

from sites.couchdb import CouchDB, CouchDBError
from sites.feed import FeedReader


def _seed(db: CouchDB, count: int) -> None:
    db.bulk_docs({"_id": f"doc-{i:03d}", "n": i} for i in range(count))


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "signups-feed"]


def test_pages_come_in_feed_order_each_once_and_reading_stops_after_a_short_page(
    couchdb: CouchDB,
) -> None:
    _seed(couchdb, 10)
    with FeedReader(couchdb, since=None, limit=4) as feed:
        pages = [feed.next_page() for _ in range(3)]
        assert [len(p.results) for p in pages] == [4, 4, 2]
        time.sleep(0.2)  # the reader has ended: nothing after the short page is read
        assert not _reader_threads()
    ids = [change.id for page in pages for change in page.results]
    assert ids == [f"doc-{i:03d}" for i in range(10)]


def test_at_most_two_pages_are_read_ahead_and_leaving_stops_the_reader(couchdb: CouchDB) -> None:
    _seed(couchdb, 20)
    calls: list[object] = []
    changes = couchdb.changes

    def counted(**kwargs):
        calls.append(kwargs["since"])
        return changes(**kwargs)

    couchdb.changes = counted  # type: ignore[method-assign]
    with FeedReader(couchdb, since=None, limit=2) as feed:
        first = feed.next_page()
        time.sleep(0.3)  # the reader runs ahead until two pages wait, then waits itself
        assert len(calls) == 4  # the page taken, two waiting, one done and waiting for room
        assert len(first.results) == 2
    assert not _reader_threads()  # left with pages unread: the reader stopped, it did not hang
    assert len(calls) == 4


def test_an_error_comes_after_the_pages_read_before_it(couchdb_server_factory) -> None:
    server = couchdb_server_factory()
    client = server.client("signups")
    client.ensure_database()
    _seed(client, 6)
    read = 0
    changes = client.changes

    def then_down(**kwargs):
        nonlocal read
        read += 1
        if read == 2:
            server.pause()
        return changes(**kwargs)

    client.changes = then_down  # type: ignore[method-assign]
    try:
        with FeedReader(client, since=None, limit=3) as feed:
            assert [c.id for c in feed.next_page().results] == ["doc-000", "doc-001", "doc-002"]
            with pytest.raises(CouchDBError, match="unreachable"):
                feed.next_page()
    finally:
        server.resume()
