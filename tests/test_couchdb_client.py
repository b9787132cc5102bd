"""sites.couchdb.CouchDB against the real npm CouchDB-compatible server (no mocks)."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from sites.couchdb import (
    Change,
    ChangesBatch,
    CouchDB,
    CouchDBError,
    _read_changes_page,
    redact_url,
)
from tests.fixtures.couchdb import unique_database_name

SPECIAL_IDS = [
    "signup/2024/acme",
    "with space",
    "ünïcødé-ščř-日本",
    "plus+question?hash#amp&percent%",
    "quote'\"semi;colon",
]


class RecordingTransport(httpx.BaseTransport):
    """The real HTTP transport, noting each request URL (to see what goes on the wire)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def seed(db: CouchDB, count: int) -> list[str]:
    ids = [f"signup-{i:03d}" for i in range(count)]
    results = db.bulk_docs(
        {"_id": doc_id, "queue_state": "deploy", "n": i} for i, doc_id in enumerate(ids)
    )
    assert all("rev" in row and "error" not in row for row in results), results
    return ids


# -- changes ------------------------------------------------------------------------------


def test_changes_pages_through_everything_with_since_and_limit(couchdb: CouchDB) -> None:
    ids = seed(couchdb, 7)

    seen: list[Change] = []
    since = None
    batches = 0
    while True:
        batch = couchdb.changes(since=since, limit=3)
        assert isinstance(batch, ChangesBatch)
        assert len(batch.results) <= 3
        batches += 1
        if not batch.results:
            break
        seen.extend(batch.results)
        since = batch.last_seq

    assert batches == 4  # 3 + 3 + 1, then an empty page
    assert [change.id for change in seen] == ids
    assert all(not change.deleted for change in seen)
    assert [change.doc["n"] for change in seen] == list(range(7))
    assert all(change.doc["_rev"] == change.rev for change in seen)

    # Caught up: a new write shows up from the stored checkpoint, nothing else does.
    couchdb.put({"_id": "late", "queue_state": "deploy"})
    batch = couchdb.changes(since=since, limit=3)
    assert [change.id for change in batch.results] == ["late"]


def test_changes_since_none_starts_from_the_beginning(couchdb: CouchDB) -> None:
    seed(couchdb, 2)
    assert [c.id for c in couchdb.changes(None, 10).results] == ["signup-000", "signup-001"]


def test_last_seq_is_opaque_and_passed_back_unchanged(couchdb_server) -> None:
    transport = RecordingTransport()
    db = CouchDB(couchdb_server.url, unique_database_name(), transport=transport)
    try:
        db.create_database()
        seed(db, 4)

        first = db.changes(since=None, limit=2)
        assert first.last_seq == first.results[-1].seq
        # This server uses integers (CouchDB 3 uses strings): the type is kept as received.
        assert type(first.last_seq) is type(first.results[-1].seq)

        second = db.changes(since=first.last_seq, limit=2)
        sent = transport.requests[-1].url.params
        assert sent["since"] == str(first.last_seq)
        assert sent["include_docs"] == "true"
        assert sent["limit"] == "2"
        assert transport.requests[-1].headers["accept-encoding"] == "identity"

        # A string checkpoint (what CouchDB 3 hands out, or what came back from storage)
        # goes on the wire verbatim, not JSON-quoted.
        again = db.changes(since=str(first.last_seq), limit=2)
        assert transport.requests[-1].url.params["since"] == str(first.last_seq)
        assert [c.id for c in again.results] == [c.id for c in second.results]
        assert [c.id for c in second.results] == ["signup-002", "signup-003"]
    finally:
        db.delete_database()
        db.close()


def test_deleted_documents_appear_as_deleted(couchdb: CouchDB) -> None:
    seed(couchdb, 2)
    checkpoint = couchdb.changes(limit=10).last_seq
    doc = couchdb.get("signup-000")
    couchdb.put({**doc, "_deleted": True})

    batch = couchdb.changes(since=checkpoint, limit=10)
    assert len(batch.results) == 1
    change = batch.results[0]
    assert change.id == "signup-000"
    assert change.deleted is True
    assert change.rev.startswith("2-")

    # From the start, the document is listed once: as its newest (deleted) revision.
    rows = {c.id: c for c in couchdb.changes(limit=10).results}
    assert rows["signup-000"].deleted is True
    assert rows["signup-001"].deleted is False

    with pytest.raises(CouchDBError) as info:
        couchdb.get("signup-000")
    assert info.value.kind == "not_found"
    assert info.value.status == 404


def test_changes_limit_must_be_positive(couchdb: CouchDB) -> None:
    with pytest.raises(ValueError):
        couchdb.changes(limit=0)


# -- documents ----------------------------------------------------------------------------


@pytest.mark.parametrize("doc_id", SPECIAL_IDS)
def test_ids_with_special_characters_round_trip(couchdb: CouchDB, doc_id: str) -> None:
    rev = couchdb.put({"_id": doc_id, "company": {"name": "Acme"}})
    doc = couchdb.get(doc_id)
    assert doc["_id"] == doc_id
    assert doc["_rev"] == rev
    assert doc["company"] == {"name": "Acme"}

    new_rev = couchdb.put({**doc, "queue_state": "completed"})
    assert new_rev.startswith("2-")
    [change] = couchdb.changes(limit=10).results
    assert change.id == doc_id
    assert change.doc["queue_state"] == "completed"


def test_missing_document_is_not_found(couchdb: CouchDB) -> None:
    with pytest.raises(CouchDBError) as info:
        couchdb.get("nope/nothing here")
    assert info.value.kind == "not_found"


def test_put_with_stale_rev_is_a_conflict(couchdb: CouchDB) -> None:
    rev1 = couchdb.put({"_id": "acme", "v": 1})
    rev2 = couchdb.put({"_id": "acme", "_rev": rev1, "v": 2})
    assert rev2 != rev1

    with pytest.raises(CouchDBError) as info:
        couchdb.put({"_id": "acme", "_rev": rev1, "v": 3})
    assert info.value.kind == "conflict"
    assert info.value.status == 409

    with pytest.raises(CouchDBError) as info:
        couchdb.put({"_id": "acme", "v": 4})  # no _rev at all for an existing doc
    assert info.value.kind == "conflict"
    assert couchdb.get("acme")["v"] == 2


def test_put_does_not_modify_the_given_document(couchdb: CouchDB) -> None:
    doc = {"_id": "acme", "v": 1}
    couchdb.put(doc)
    assert doc == {"_id": "acme", "v": 1}


def test_update_reapplies_after_a_concurrent_write(couchdb: CouchDB, couchdb_server) -> None:
    couchdb.put({"_id": "signup/acme", "queue_state": "deploy", "tags": []})
    other = couchdb_server.client(couchdb.database)  # another writer, own connection pool
    calls = 0

    def mark_completed(doc: dict) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # someone else writes between our read and our write
            current = other.get("signup/acme")
            other.put({**current, "tags": ["from-elsewhere"]})
        doc["queue_state"] = "completed"
        doc["site_url"] = "https://acme.example.com"

    try:
        stored = couchdb.update("signup/acme", mark_completed)
    finally:
        other.close()

    assert calls == 2
    assert stored["_rev"].startswith("3-")
    fresh = couchdb.get("signup/acme")
    assert fresh == stored
    assert fresh["tags"] == ["from-elsewhere"]  # the concurrent write survived
    assert fresh["queue_state"] == "completed"


def test_update_accepts_a_returned_document_and_skips_no_op_writes(couchdb: CouchDB) -> None:
    rev = couchdb.put({"_id": "acme", "v": 1})
    stored = couchdb.update("acme", lambda doc: {"v": doc["v"] + 1})
    assert stored["v"] == 2
    assert stored["_id"] == "acme"
    assert stored["_rev"].startswith("2-")

    unchanged = couchdb.update("acme", lambda doc: None)
    assert unchanged["_rev"] == stored["_rev"] != rev


def test_update_gives_up_after_retries(couchdb: CouchDB, couchdb_server) -> None:
    couchdb.put({"_id": "hot", "n": 0})
    other = couchdb_server.client(couchdb.database)
    calls = 0

    def always_loses(doc: dict) -> None:
        nonlocal calls
        calls += 1
        current = other.get("hot")
        other.put({**current, "n": current["n"] + 1})
        doc["mine"] = True

    try:
        with pytest.raises(CouchDBError) as info:
            couchdb.update("hot", always_loses, retries=2)
    finally:
        other.close()
    assert info.value.kind == "conflict"
    assert calls == 3  # the first try plus two retries
    assert "mine" not in couchdb.get("hot")


def test_update_runs_concurrently_without_losing_writes(couchdb: CouchDB, couchdb_server) -> None:
    couchdb.put({"_id": "counter", "n": 0})
    errors: list[Exception] = []

    def bump(times: int) -> None:
        with couchdb_server.client(couchdb.database) as db:
            for _ in range(times):
                try:
                    db.update("counter", lambda d: {**d, "n": d["n"] + 1}, retries=50)
                except Exception as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=bump, args=(5,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert couchdb.get("counter")["n"] == 20


# -- databases ----------------------------------------------------------------------------


def test_database_lifecycle(couchdb_server) -> None:
    with couchdb_server.client(unique_database_name()) as db:
        assert db.exists() is False
        assert db.ensure_database() is True
        assert db.ensure_database() is False
        with pytest.raises(CouchDBError) as info:
            db.create_database()
        assert info.value.kind == "conflict"
        seed(db, 3)
        assert db.info()["doc_count"] == 3
        db.delete_database()
        assert db.exists() is False
        db.delete_database()  # already gone: fine


def test_bulk_docs_reports_per_document_errors(couchdb: CouchDB) -> None:
    couchdb.put({"_id": "taken", "v": 1})
    results = couchdb.bulk_docs([{"_id": "fresh"}, {"_id": "taken", "v": 2}])
    assert [row["id"] for row in results] == ["fresh", "taken"]
    assert "rev" in results[0]
    assert results[1]["error"] == "conflict"


def test_missing_database(couchdb_server) -> None:
    with couchdb_server.client(unique_database_name()) as db:
        for call in (lambda: db.changes(limit=1), db.info, lambda: db.get("x")):
            with pytest.raises(CouchDBError) as info:
                call()
            assert info.value.kind == "missing_database"
            assert info.value.status == 404
            assert db.database in str(info.value)


# -- failures and credentials --------------------------------------------------------------


def test_unreachable_server_is_a_clear_error_without_the_password(
    couchdb_unreachable_url: str,
) -> None:
    assert "hunter2-secret" in couchdb_unreachable_url
    with CouchDB(couchdb_unreachable_url, "signups", timeout=2) as db:
        assert "hunter2-secret" not in repr(db)
        assert "hunter2-secret" not in db.url
        with pytest.raises(CouchDBError) as info:
            db.changes(since=None, limit=10)

    error = info.value
    assert error.kind == "unreachable"
    assert error.status is None
    message = str(error)
    assert "unreachable" in message
    assert "/signups/_changes" in message
    assert "hunter2-secret" not in message
    assert "hunter2-secret" not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_server_going_down_mid_sync_and_coming_back(couchdb_server_factory) -> None:
    server = couchdb_server_factory()
    with server.client("signups") as db:
        db.create_database()
        seed(db, 4)
        first = db.changes(limit=2)

        server.pause()  # pooled keep-alive connections are dropped too
        with pytest.raises(CouchDBError) as info:
            db.changes(since=first.last_seq, limit=2)
        assert info.value.kind == "unreachable"

        server.resume()
        second = db.changes(since=first.last_seq, limit=2)
        assert [c.id for c in second.results] == ["signup-002", "signup-003"]


def test_repr_and_url_redact_the_password() -> None:
    db = CouchDB("https://admin:p%40ss:word@couch.example.com:6984/prefix", "signups")
    try:
        assert "p%40ss" not in repr(db) and "p@ss" not in repr(db)
        assert db.url == "https://admin:***@couch.example.com:6984/prefix"
        assert repr(db) == (
            "CouchDB(url='https://admin:***@couch.example.com:6984/prefix', database='signups')"
        )
    finally:
        db.close()
    assert redact_url("http://u:secret@h:5984/x") == "http://u:***@h:5984/x"
    assert redact_url("http://h:5984") == "http://h:5984"


def test_wrong_password_is_unauthorized_and_not_leaked(couchdb_admin_server) -> None:
    name = unique_database_name()
    with couchdb_admin_server.client(name) as admin_db:
        admin_db.create_database()
        admin_db.put({"_id": "acme"})
        # Like CouchDB 3's default: only admins may read the database.
        security = {"admins": {"names": [], "roles": []}, "members": {"roles": ["_admin"]}}
        response = httpx.put(f"{couchdb_admin_server.admin_url}/{name}/_security", json=security)
        assert response.status_code == 200, response.text
        assert [c.id for c in admin_db.changes(limit=5).results] == ["acme"]

    bad_url = couchdb_admin_server.url.replace("http://", "http://admin:not-the-password@")
    with CouchDB(bad_url, name) as db, pytest.raises(CouchDBError) as info:
        db.changes(limit=5)
    assert info.value.kind == "unauthorized"
    assert info.value.status == 401
    assert "not-the-password" not in str(info.value)
    assert "credentials" in str(info.value)

    with CouchDB(couchdb_admin_server.url, name) as anonymous:
        with pytest.raises(CouchDBError) as info:
            anonymous.get("acme")
        assert info.value.kind == "unauthorized"


USUAL_PAGES = [  # as CouchDB and the npm server write them
    b'{"results":[{"seq":"1-g1","id":"a","changes":[{"rev":"1-x"}],"doc":{"_id":"a",'
    b'"n":[1,2.5,null,true],"s":"\\u00e9\\ud83d\\ude00"}},{"seq":"2-g2","id":"b",'
    b'"changes":[{"rev":"2-y"}],"deleted":true,"doc":{"_id":"b","_deleted":true}}],'
    b'"last_seq":"2-g2","pending":0}',
    b'{"results":[{"seq":3,"id":"c","changes":[]},{"seq":4,"id":"d","doc":null}],"last_seq":4}',
    b'{"results":[{"seq":"1","id":"a","doc":[1]}],"last_seq":"1"}',  # a list: no document
]
ODD_PAGES = [  # only the tolerant reading takes these
    b'{"results":[{"seq":"1","id":"a","doc":{"s":"\\ud800"}}],"last_seq":"1"}',  # lone surrogate
    b'{"results":[{"seq":"1","id":"a","doc":{"x":NaN}}],"last_seq":"1"}',
    b'{"results":[{"seq":"1","id":"a","doc":{"x":1e400}}],"last_seq":"1"}',
    b'{"results":[{"seq":"1","id":7,"doc":{}}],"last_seq":"1"}',
    b'{"results":[{"seq":"1","id":"a","deleted":1}],"last_seq":"1"}',
    b'{"results":[{"seq":"1","id":"a","changes":["1-x"]}],"last_seq":"1"}',
    b'{"results":[{"seq":[1,"x"],"id":"a"}],"last_seq":[1,"x"]}',
]


@pytest.mark.parametrize("body", USUAL_PAGES)
def test_the_fast_changes_reader_agrees_with_the_tolerant_one(body: bytes) -> None:
    fast = _read_changes_page(body)
    assert fast is not None
    tolerant = [CouchDB._parse_change(row) for row in json.loads(body)["results"]]
    assert [change._replace(doc_json=None) for change in fast.results] == tolerant
    assert fast.last_seq == json.loads(body)["last_seq"]
    for change in fast.results:  # the text kept is the document itself
        assert change.doc_json is None or json.loads(change.doc_json) == change.doc


@pytest.mark.parametrize("body", ODD_PAGES)
def test_the_fast_changes_reader_leaves_odd_pages_to_the_tolerant_one(body: bytes) -> None:
    assert _read_changes_page(body) is None
    assert [CouchDB._parse_change(row) for row in json.loads(body)["results"]]  # it reads them


def test_the_fast_changes_reader_keeps_the_text_as_sent() -> None:
    page = _read_changes_page(
        b'{"results":[{"seq":"1-g1","id":"a","changes":[{"rev":"1-x"}],"doc":{"_id":"a"}}],'
        b'"last_seq":"1-g1","pending":0}'
    )
    assert page is not None and page.results[0].doc_json == '{"_id":"a"}'
