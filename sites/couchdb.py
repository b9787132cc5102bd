"""A small synchronous CouchDB client: the `_changes` reader and document write-back.

Only documented Apache CouchDB HTTP API is used, so the same code runs against CouchDB 3 in
production and the npm `couchserver/` (express-pouchdb) in tests and the demo.

    with CouchDB("http://admin:secret@localhost:5984", "signups") as db:
        batch = db.changes(since=checkpoint, limit=100)
        for change in batch.results:
            ...
        checkpoint = batch.last_seq  # opaque: store it and pass it back unchanged

Credentials come from the URL's userinfo and are sent as HTTP basic auth. They never appear in
`repr()`, `.url` or error messages. This module does not touch Django: it takes plain arguments.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple
from urllib.parse import quote

import httpx
import msgspec

__all__ = [
    "Change",
    "ChangesBatch",
    "CouchDB",
    "CouchDBError",
    "ErrorKind",
    "Seq",
    "redact_url",
]

Seq = str | int
"""A `_changes` sequence: an integer on some servers, an opaque string on CouchDB 2+.

Never parse or compare it; store it and hand it back as `since` unchanged.
"""

ErrorKind = Literal[
    "unreachable",  # could not connect, connection dropped, or timed out
    "unauthorized",  # 401 / 403: missing or wrong credentials, or not allowed
    "missing_database",  # 404 for the database itself
    "conflict",  # 409 document update conflict (stale or missing _rev); 412 database exists
    "not_found",  # 404 for a document (missing or deleted)
    "bad_response",  # anything else: 4xx/5xx we do not expect, non-JSON body, odd shape
]

DEFAULT_TIMEOUT = 10.0
_DOC_MISSING_REASONS = {"missing", "deleted"}


class CouchDBError(Exception):
    """Any failure talking to CouchDB.

    `kind` says what went wrong (see `ErrorKind`), `status` is the HTTP status when there was a
    response (None when the server was unreachable), `reason` is CouchDB's own `reason` text
    when it sent one. The message names the method and the URL without credentials.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        status: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"CouchDBError({str(self)!r}, kind={self.kind!r}, status={self.status!r})"


class Change(NamedTuple):
    """One row of a `_changes` feed: the newest revision of one document.

    Immutable (a named tuple: a page builds a thousand, and a frozen dataclass cost twice as
    much to build).
    """

    id: str
    seq: Seq
    deleted: bool
    doc: dict[str, Any] | None
    rev: str | None = None
    #: ``doc``'s JSON text as CouchDB sent it, when the page was read by the fast reader:
    #: then it is exactly ``doc`` (that reader refuses NaN, infinities and lone surrogates).
    doc_json: str | None = None


@dataclass(frozen=True, slots=True)
class ChangesBatch:
    """One page of the `_changes` feed. Pass `last_seq` back as `since` to get the next page.

    An empty `results` means the reader has caught up (for now).
    """

    results: list[Change]
    last_seq: Seq


class _ChangeRev(msgspec.Struct):
    rev: str | None = None


class _ChangeRow(msgspec.Struct):
    id: str
    seq: str | int
    changes: list[_ChangeRev] = []
    deleted: bool = False
    doc: msgspec.Raw = msgspec.Raw(b"")  # decoded on its own, so its text can be kept


class _ChangesPage(msgspec.Struct):
    results: list[_ChangeRow]
    last_seq: str | int


_decode_changes_page = msgspec.json.Decoder(_ChangesPage).decode
_decode_json = msgspec.json.Decoder().decode


def _read_changes_page(body: bytes) -> ChangesBatch | None:
    """A ``_changes`` page of the usual shape, read by msgspec; None for any other body.

    Everything it does not read (other types, NaN, lone surrogates, malformed JSON) is left to
    ``CouchDB.changes``'s own tolerant reading, so the two agree on every page this reads.
    """
    try:
        page = _decode_changes_page(body)
        results = []
        for row in page.results:
            doc = doc_json = None
            if row.doc:
                doc = _decode_json(row.doc)
                if type(doc) is dict:
                    doc_json = bytes(row.doc).decode()
                else:
                    doc = None
            rev = row.changes[0].rev if row.changes else None
            results.append(Change(row.id, row.seq, row.deleted, doc, rev, doc_json))
    except (msgspec.DecodeError, UnicodeDecodeError):  # ValidationError is a DecodeError
        return None
    return ChangesBatch(results=results, last_seq=page.last_seq)


def redact_url(url: str | httpx.URL) -> str:
    """Return `url` with any password replaced by `***` (the user name is kept)."""
    parsed = httpx.URL(str(url))
    if not parsed.password:
        return str(parsed)
    user = quote(parsed.username, safe="")
    return str(parsed.copy_with(userinfo=f"{user}:***".encode("ascii")))


def _quote_db(name: str) -> str:
    return quote(name, safe="")


def _quote_doc_id(doc_id: str) -> str:
    """Percent-encode a document id for a URL path; keep the `_design/` / `_local/` slash."""
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            return prefix + quote(doc_id[len(prefix) :], safe="")
    return quote(doc_id, safe="")


class CouchDB:
    """Client for one CouchDB database, over a pooled `httpx.Client`.

    `url` is the server root, e.g. `http://user:pass@host:5984` (a path prefix is allowed for
    servers behind a proxy); `database` is the database name. Use it as a context manager or
    call `close()`. Safe to share between threads.
    """

    def __init__(
        self,
        url: str,
        database: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not database:
            raise ValueError("database name must not be empty")
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"not an http(s) CouchDB URL: {redact_url(url)}")
        self.database = database
        self._username = parsed.username
        self._password = parsed.password
        self._base = parsed.copy_with(userinfo=b"", query=None, fragment=None)
        auth = httpx.BasicAuth(self._username, self._password) if self._username else None
        self._http = httpx.Client(
            base_url=self._base,
            auth=auth,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"Accept": "application/json", "Accept-Encoding": "identity"},
            transport=transport,
            follow_redirects=False,
        )

    # -- plumbing -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server URL with the password redacted."""
        base = str(self._base).rstrip("/")
        if not self._username:
            return base
        userinfo = quote(self._username, safe="") + (":***" if self._password else "")
        return base.replace("://", f"://{userinfo}@", 1)

    def __repr__(self) -> str:
        return f"CouchDB(url={self.url!r}, database={self.database!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> CouchDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _db_path(self) -> str:
        return _quote_db(self.database)

    def _doc_path(self, doc_id: str) -> str:
        if not isinstance(doc_id, str) or not doc_id:
            raise ValueError("document id must be a non-empty string")
        return f"{self._db_path()}/{_quote_doc_id(doc_id)}"

    def _describe(self, method: str, path: str) -> str:
        return f"CouchDB {method} {str(self._base).rstrip('/')}/{path}"

    def _scrub(self, text: str) -> str:
        if self._password and self._password in text:
            text = text.replace(self._password, "***")
        return text

    def _request(
        self,
        method: str,
        path: str,
        *,
        doc_level: bool = False,
        params: dict[str, str] | None = None,
        body: Any = None,
        parse: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON body or raise CouchDBError.

        ``parse``: a faster reader of a successful body, returning None for what it cannot
        read (which is then decoded as any other body).
        """
        what = self._describe(method, path)
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                content=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json"} if body is not None else None,
            )
        except httpx.TimeoutException as exc:
            detail = str(exc) or type(exc).__name__
            raise CouchDBError(
                self._scrub(f"{what}: CouchDB is unreachable (timed out: {detail})"),
                kind="unreachable",
            ) from None
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise CouchDBError(
                self._scrub(f"{what}: CouchDB is unreachable ({detail})"), kind="unreachable"
            ) from None

        status = response.status_code
        if parse is not None and 200 <= status < 300:
            parsed = parse(response.content)
            if parsed is not None:
                return parsed
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = None
            if 200 <= status < 300:
                raise CouchDBError(
                    f"{what}: expected JSON, got {response.headers.get('content-type')!r}",
                    kind="bad_response",
                    status=status,
                ) from None
        if 200 <= status < 300:
            return data

        error = reason = None
        if isinstance(data, dict):
            error = str(data.get("error") or "") or None
            reason = str(data.get("reason") or "") or None
        detail = " ".join(filter(None, [str(status), error, f"({reason})" if reason else None]))
        kind: ErrorKind
        if status in (401, 403):
            kind = "unauthorized"
        elif status == 404:
            kind = "not_found" if doc_level and self._is_doc_404(reason) else "missing_database"
        elif status in (409, 412):
            kind = "conflict"
        else:
            kind = "bad_response"
        hint = {
            "unauthorized": "; check the credentials in the CouchDB URL",
            "missing_database": f"; database {self.database!r} does not exist",
        }.get(kind, "")
        raise CouchDBError(
            self._scrub(f"{what} failed: {detail}{hint}"), kind=kind, status=status, reason=reason
        )

    @staticmethod
    def _is_doc_404(reason: str | None) -> bool:
        # CouchDB says "missing" / "deleted" for documents, "Database does not exist." for the
        # database; PouchDB says "no_db_file" for the database.
        if reason in _DOC_MISSING_REASONS:
            return True
        text = (reason or "").lower()
        return not ("database" in text or "no_db_file" in text)

    # -- server and database --------------------------------------------------------------

    def server_info(self) -> dict[str, Any]:
        """`GET /`: the server's welcome document (handy as a health check)."""
        data = self._request("GET", "")
        return data if isinstance(data, dict) else {}

    def info(self) -> dict[str, Any]:
        """`GET /{db}`: database information (doc_count, update_seq, ...)."""
        data = self._request("GET", self._db_path())
        if not isinstance(data, dict):
            raise CouchDBError(
                f"{self._describe('GET', self._db_path())}: unexpected body", kind="bad_response"
            )
        return data

    def exists(self) -> bool:
        """True when the database exists."""
        try:
            self.info()
        except CouchDBError as exc:
            if exc.kind == "missing_database":
                return False
            raise
        return True

    def create_database(self) -> None:
        """`PUT /{db}`. Raises CouchDBError(kind="conflict") if it already exists.

        Creating databases needs server-admin credentials on CouchDB 3.
        """
        self._request("PUT", self._db_path())

    def ensure_database(self) -> bool:
        """Create the database unless it exists; return True when this call created it.

        Checks first with a read, so callers without admin rights can use it on an existing
        database.
        """
        if self.exists():
            return False
        try:
            self.create_database()
        except CouchDBError as exc:
            if exc.kind == "conflict":  # created concurrently
                return False
            raise
        return True

    def delete_database(self) -> None:
        """`DELETE /{db}`. Idempotent: deleting a missing database is not an error."""
        try:
            self._request("DELETE", self._db_path())
        except CouchDBError as exc:
            if exc.kind != "missing_database":
                raise

    # -- changes --------------------------------------------------------------------------

    def changes(self, since: Seq | None = None, limit: int = 100) -> ChangesBatch:
        """One page of the normal `_changes` feed with documents included.

        `GET /{db}/_changes?since=...&include_docs=true&limit=N`. `since=None` starts from the
        beginning; otherwise pass a previous `ChangesBatch.last_seq` exactly as returned.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        params = {"include_docs": "true", "limit": str(limit)}
        if since is not None:
            params["since"] = since if isinstance(since, str) else json.dumps(since)
        path = f"{self._db_path()}/_changes"
        data = self._request("GET", path, params=params, parse=_read_changes_page)
        if isinstance(data, ChangesBatch):
            return data
        try:
            results = [self._parse_change(row) for row in data["results"]]
            last_seq = data["last_seq"]
        except (KeyError, TypeError, ValueError) as exc:
            raise CouchDBError(
                f"{self._describe('GET', path)}: malformed _changes response ({exc!r})",
                kind="bad_response",
            ) from None
        if not isinstance(last_seq, str | int):
            # Not expected from CouchDB 2+/PouchDB, but keep it opaque and JSON-able.
            last_seq = json.dumps(last_seq)
        return ChangesBatch(results=results, last_seq=last_seq)

    @staticmethod
    def _parse_change(row: dict[str, Any]) -> Change:
        doc = row.get("doc")
        changes = row.get("changes") or []
        rev = changes[0].get("rev") if changes and isinstance(changes[0], dict) else None
        seq = row["seq"]
        if not isinstance(seq, str | int):
            seq = json.dumps(seq)
        return Change(
            id=str(row["id"]),
            seq=seq,
            deleted=bool(row.get("deleted", False)),
            doc=doc if isinstance(doc, dict) else None,
            rev=rev,
        )

    # -- documents ------------------------------------------------------------------------

    def get(self, doc_id: str) -> dict[str, Any]:
        """`GET /{db}/{id}`: the current revision. Missing or deleted: kind `not_found`."""
        data = self._request("GET", self._doc_path(doc_id), doc_level=True)
        if not isinstance(data, dict):
            raise CouchDBError(
                f"{self._describe('GET', self._doc_path(doc_id))}: unexpected body",
                kind="bad_response",
            )
        return data

    def put(self, doc: dict[str, Any]) -> str:
        """`PUT /{db}/{doc["_id"]}`; return the new `_rev`. `doc` itself is not modified.

        Include the current `_rev` to update an existing document; a stale or missing `_rev`
        raises CouchDBError(kind="conflict").
        """
        doc_id = doc.get("_id")
        if not isinstance(doc_id, str) or not doc_id:
            raise ValueError("put() needs a document with a non-empty string _id")
        path = self._doc_path(doc_id)
        data = self._request("PUT", path, doc_level=True, body=doc)
        rev = data.get("rev") if isinstance(data, dict) else None
        if not isinstance(rev, str):
            raise CouchDBError(
                f"{self._describe('PUT', path)}: response has no rev", kind="bad_response"
            )
        return rev

    def delete(self, doc_id: str, rev: str) -> str:
        """`DELETE /{db}/{doc_id}?rev=...`; return the tombstone's `_rev`."""
        path = self._doc_path(doc_id)
        data = self._request("DELETE", path, doc_level=True, params={"rev": rev})
        return str(data.get("rev", "")) if isinstance(data, dict) else ""

    def update(
        self,
        doc_id: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any] | None],
        retries: int = 5,
    ) -> dict[str, Any]:
        """Read-modify-write one document, re-reading and re-applying `mutate` on conflict.

        `mutate` gets a fresh copy of the current document and either changes it in place
        (returning None) or returns the new document; `_id` and `_rev` are kept. It may be
        called several times, so it must be a pure function of the document. If it changes
        nothing, nothing is written. Returns the document as stored (with its new `_rev`).
        After `retries` conflicts in a row the last CouchDBError(kind="conflict") is raised.
        """
        attempt = 0
        while True:
            current = self.get(doc_id)
            candidate = copy.deepcopy(current)
            result = mutate(candidate)
            new_doc = candidate if result is None else dict(result)
            new_doc["_id"] = current["_id"]
            new_doc["_rev"] = current["_rev"]
            if new_doc == current:
                return current
            try:
                new_doc["_rev"] = self.put(new_doc)
            except CouchDBError as exc:
                if exc.kind != "conflict" or attempt >= retries:
                    raise
                attempt += 1
                time.sleep(random.uniform(0, min(0.01 * 2**attempt, 0.5)))
                continue
            return new_doc

    def bulk_docs(self, docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """`POST /{db}/_bulk_docs`: write many documents (e.g. to seed a database).

        Returns CouchDB's per-document results (`{"id", "rev"}` or `{"id", "error",
        "reason"}`) in input order; per-document errors are returned, not raised.
        """
        path = f"{self._db_path()}/_bulk_docs"
        data = self._request("POST", path, body={"docs": list(docs)})
        if not isinstance(data, list):
            raise CouchDBError(
                f"{self._describe('POST', path)}: expected a list", kind="bad_response"
            )
        return data
