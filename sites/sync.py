"""Importing signup documents from CouchDB's ``_changes`` feed, and writing results back.

Invariants:
- A document read from the feed is never dropped: each change ends as exactly one of
  imported, updated, rejected, withdrawn or unchanged (replays and our own write-back echoes).
- The checkpoint moves only in the same transaction that stored the batch it covers, so a crash
  or an unreachable CouchDB loses nothing: the next run re-reads from the old checkpoint, and
  replayed changes are recognised by ``_rev`` and create no duplicates.
- Network calls happen outside database transactions (the feed is read a few pages ahead on
  a thread of its own while a page is stored, ``sites.feed``; that thread never touches the
  database).
- Only one sync runs at a time (a compare-and-swap lease on the checkpoint row).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

import audit
from sites.couchdb import Change, CouchDB, CouchDBError
from sites.feed import FeedReader
from sites.models import Signup, Site, SyncCheckpoint
from sites.storable import json_text_is_storable, storable_json, storable_text
from sites.validation import SignupRules
from subscribie_admin.bulk_insert import JSONText, insert_rows, new_row

LEASE = timedelta(minutes=10)
SYNC_ACTOR = "system:sync"


class SyncLocked(Exception):
    """Another sync holds the lease (cron fired twice)."""


@dataclass
class SyncSummary:
    read: int = 0
    imported: int = 0
    updated: int = 0
    rejected: int = 0
    withdrawn: int = 0
    unchanged: int = 0
    written_back: int = 0
    checkpoint: Any = None
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"imported {self.imported}, updated {self.updated}, rejected {self.rejected}, "
            f"withdrawn {self.withdrawn}, unchanged {self.unchanged}, "
            f"written back {self.written_back}, checkpoint {self.checkpoint}"
        )


def couchdb_from_settings() -> CouchDB:
    return CouchDB(settings.COUCHDB_URL, settings.COUCHDB_SIGNUPS_DB)


def _acquire_lease(database: str, token: str) -> SyncCheckpoint:
    checkpoint, _ = SyncCheckpoint.objects.get_or_create(database=database)
    now = timezone.now()
    claimed = (
        SyncCheckpoint.objects.filter(pk=checkpoint.pk)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .update(locked_by=token, locked_until=now + LEASE)
    )
    if not claimed:
        checkpoint.refresh_from_db()
        raise SyncLocked(
            f"another sync ({checkpoint.locked_by}) holds the lock until {checkpoint.locked_until}"
        )
    checkpoint.refresh_from_db()
    return checkpoint


def _release_lease(checkpoint: SyncCheckpoint, token: str) -> None:
    SyncCheckpoint.objects.filter(pk=checkpoint.pk, locked_by=token).update(
        locked_by="", locked_until=None
    )


def signups_sync(
    *,
    client: CouchDB,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> SyncSummary:
    """Read the feed from the checkpoint to its end, storing every change; return counts.

    Raises CouchDBError when CouchDB cannot be read (the checkpoint then still points at the
    last batch stored) and SyncLocked when another sync is running.
    """
    token = f"sync-{uuid.uuid4().hex[:12]}"
    checkpoint = _acquire_lease(client.database, token)
    summary = SyncSummary(checkpoint=checkpoint.last_seq)
    try:
        with FeedReader(client, since=checkpoint.last_seq, limit=batch_size) as feed:
            claimed, rules = ClaimedNames.load(), signup_rules()  # while the first page comes
            while True:
                batch = feed.next_page()
                if not batch.results:
                    break
                with transaction.atomic():
                    _store_batch(batch.results, summary, claimed, rules)
                    # Compare-and-swap on our lease: a sync whose lease expired must not move
                    # the checkpoint under a newer one.
                    moved = SyncCheckpoint.objects.filter(pk=checkpoint.pk, locked_by=token).update(
                        last_seq=batch.last_seq, locked_until=timezone.now() + LEASE
                    )
                    if not moved:
                        raise SyncLocked("the sync lease was lost; stopping without saving")
                summary.read += len(batch.results)
                summary.checkpoint = batch.last_seq
                if progress:
                    progress(len(batch.results))
                if len(batch.results) < batch_size:
                    break
    finally:
        _release_lease(checkpoint, token)
    summary.written_back = signups_write_back(client=client, errors=summary.errors)
    return summary


@dataclass
class ClaimedNames:
    """Site names and custom domains already claimed by a site or a pending/approved signup.

    Read once per sync (two queries) and kept current as signups are validated, released
    (re-validated, withdrawn) or added, so a large import does not re-read it per batch.
    """

    names: set[str]
    domains: set[str]

    @classmethod
    def load(cls, *, exclude: Iterable[str] = ()) -> ClaimedNames:
        """Everything claimed, except by the signups with the CouchDB ids in ``exclude``."""
        live = Signup.objects.filter(
            status__in=[Signup.Status.PENDING, Signup.Status.APPROVED]
        ).exclude(couch_id__in=list(exclude))
        names = set(Site.objects.values_list("slug", flat=True))
        names.update(live.exclude(requested_name="").values_list("requested_name", flat=True))
        domains = set(
            Site.objects.exclude(custom_domain="").values_list("custom_domain", flat=True)
        )
        domains.update(live.exclude(custom_domain="").values_list("custom_domain", flat=True))
        return cls(names, domains)

    def release(self, signup: Signup) -> None:
        """Forget what ``signup`` claimed (before re-validating it, or when it is withdrawn)."""
        if signup.status in (Signup.Status.PENDING, Signup.Status.APPROVED):
            self.names.discard(signup.requested_name)
            self.domains.discard(signup.custom_domain)


def signup_rules() -> SignupRules:
    """The platform's validation settings, normalised once (per sync, not per document)."""
    return SignupRules.of(
        base_domain=settings.SITES_BASE_DOMAIN, extra_reserved=settings.SITES_RESERVED_NAMES
    )


def apply_validation(
    signup: Any, doc: dict[str, Any], *, claimed: ClaimedNames, rules: SignupRules | None = None
):
    """Fill the signup's validated fields (or reasons) from ``doc``; returns the result.

    ``signup``: a ``Signup``, or a new one's row (``bulk_insert.new_row``) about to be inserted.
    ``rules``: ``signup_rules()``, read afresh when not given.

    A valid signup's name and domain are added to ``claimed``.
    """
    result = (rules or signup_rules()).validate(
        doc, taken_names=claimed.names, taken_domains=claimed.domains
    )
    if result.ok:
        valid = result.signup
        signup.status = Signup.Status.PENDING
        signup.reasons = []
        signup.company_name = valid.title
        signup.requested_name = valid.slug
        signup.owner_email = valid.owner_email
        signup.custom_domain = valid.custom_domain or ""
        signup.theme_name = valid.theme_name
        signup.theme_colour = valid.theme_colour
        signup.maintenance_window = valid.maintenance_window or ""
        claimed.names.add(valid.slug)
        if valid.custom_domain:
            claimed.domains.add(valid.custom_domain)
    else:
        # What staff see in the list for a refused signup: the name as given, made storable.
        company = doc.get("company")
        name = company.get("name") if isinstance(company, dict) else None
        signup.company_name = storable_text(name if isinstance(name, str) else "")[:200]
        signup.status = Signup.Status.REJECTED
        signup.reasons = list(result.reasons)
    return result


def _store_batch(
    changes: list[Change], summary: SyncSummary, claimed: ClaimedNames, rules: SignupRules
) -> None:
    """Upsert one batch with a constant number of queries (bulk create/update)."""
    # The feed may list a document twice in one batch on some servers: keep the last.
    latest: dict[str, Change] = {change.id: change for change in changes}
    summary.unchanged += len(changes) - len(latest)
    ids = set(latest)
    existing = {s.couch_id: s for s in _signups_with_couch_ids(ids)}
    to_create: list[Any] = []  # rows for insert_rows (new_row)
    to_update: list[Signup] = []
    received = timezone.now()  # the batch's signups arrive together, in one transaction
    for doc_id, change in latest.items():
        signup = existing.get(doc_id)
        if change.deleted:
            if signup is None:
                signup = new_row(
                    Signup,
                    couch_id=doc_id,
                    status=Signup.Status.WITHDRAWN,
                    raw={},
                    received_at=received,
                )
                to_create.append(signup)
            elif signup.status == Signup.Status.WITHDRAWN:
                summary.unchanged += 1
                continue
            else:
                claimed.release(signup)
                signup.status = Signup.Status.WITHDRAWN
                to_update.append(signup)
            signup.couch_rev = change.rev or ""
            summary.withdrawn += 1
            continue
        doc = change.doc or {}
        rev = str(doc.get("_rev") or change.rev or "")
        # Replays, and our own write-backs (their new _rev is stored when written), are known.
        if signup is not None and signup.couch_rev == rev:
            summary.unchanged += 1
            continue
        if signup is None:
            signup = new_row(
                Signup,
                couch_id=doc_id,
                couch_rev=rev,
                raw=_raw_column(change),
                received_at=received,
            )
            apply_validation(signup, doc, claimed=claimed, rules=rules)
            to_create.append(signup)
            if signup.status == Signup.Status.REJECTED:
                summary.rejected += 1
            else:
                summary.imported += 1
            continue
        signup.couch_rev = rev
        if signup.status == Signup.Status.APPROVED:
            # The site exists: staff decide what to do with the new revision.
            signup.pending_change = storable_json(doc)
        else:
            signup.raw = storable_json(doc)
            signup.writeback = Signup.WriteBack.NONE
            claimed.release(signup)
            apply_validation(signup, doc, claimed=claimed, rules=rules)
        to_update.append(signup)
        summary.updated += 1
    insert_rows(Signup, to_create)
    if to_update:
        Signup.objects.bulk_update(
            to_update,
            [
                "couch_rev",
                "raw",
                "status",
                "reasons",
                "company_name",
                "requested_name",
                "owner_email",
                "custom_domain",
                "theme_name",
                "theme_colour",
                "maintenance_window",
                "pending_change",
                "writeback",
            ],
            batch_size=500,
        )


def _signups_with_couch_ids(ids: Collection[str]) -> Iterable[Signup]:
    """``Signup.objects.filter(couch_id__in=ids)``, as plain SQL: the ORM prepares each of a
    batch's thousand ids one by one, which took three times as long as the query itself."""
    if not ids:
        return Signup.objects.none()
    quote = connection.ops.quote_name
    table, column = quote(Signup._meta.db_table), quote(Signup._meta.get_field("couch_id").column)
    placeholders = ", ".join(["%s"] * len(ids))
    return Signup.objects.raw(
        f"SELECT * FROM {table} WHERE {column} IN ({placeholders})", [str(i) for i in ids]
    )


def _raw_column(change: Change) -> Any:
    """What a new signup's ``raw`` column stores of its document: the text CouchDB sent when
    it is storable as it is, which spares encoding the document again; else the storable
    copy. Only for ``insert_rows``."""
    text = change.doc_json
    if text is not None and json_text_is_storable(text):
        return JSONText(text)
    return storable_json(change.doc or {})


def _completed(site: Site) -> Callable[[dict[str, Any]], None]:
    site_url = f"https://{site.slug}.{settings.SITES_BASE_DOMAIN}"
    deployed_at = (site.last_deployed_at or timezone.now()).isoformat()

    def mutate(doc: dict[str, Any]) -> None:
        doc.update(queue_state="completed", site_url=site_url, deployed_at=deployed_at)

    return mutate


def _rejected(signup: Signup) -> Callable[[dict[str, Any]], None]:
    reasons = list(signup.reasons)

    def mutate(doc: dict[str, Any]) -> None:
        doc.update(queue_state="rejected", rejection_reasons=reasons)

    return mutate


def signups_write_back(*, client: CouchDB, errors: list[str] | None = None) -> int:
    """Write pending results to the signup documents; returns how many were written.

    Live sites' documents get ``queue_state: completed``, ``site_url`` and ``deployed_at``;
    staff-rejected ones get ``queue_state: rejected`` and the reasons. A write that fails stays
    pending for the next run (conflicts are re-read and re-applied by ``CouchDB.update``).
    """
    written = 0
    pending = Signup.objects.filter(writeback=Signup.WriteBack.PENDING).prefetch_related("sites")
    for signup in pending:
        if signup.status == Signup.Status.REJECTED:
            mutate = _rejected(signup)
        else:
            site = next((s for s in signup.sites.all() if s.status == Site.Status.LIVE), None)
            if site is None:
                continue
            mutate = _completed(site)
        try:
            stored = client.update(signup.couch_id, mutate)
        except CouchDBError as exc:
            if errors is not None:
                errors.append(f"write-back of {signup.couch_id}: {exc}")
            if exc.kind == "unreachable":
                break
            continue
        with transaction.atomic():
            updated = Signup.objects.filter(
                pk=signup.pk, writeback=Signup.WriteBack.PENDING
            ).update(writeback=Signup.WriteBack.DONE, couch_rev=stored.get("_rev", ""), raw=stored)
            if updated:
                audit.record(
                    action="signup.write_back",
                    actor=SYNC_ACTOR,
                    subject=signup.couch_id,
                    data={"queue_state": stored.get("queue_state")},
                )
        written += updated
    return written
