"""Signup import from a real CouchDB-compatible server: nothing lost, nothing duplicated."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from sites.couchdb import CouchDB
from sites.models import Signup, Site, SyncCheckpoint
from sites.services import signup_reject, signups_approve
from sites.sync import SyncLocked, signups_sync, signups_write_back
from tests.fixtures.couchdb import signup_doc

pytestmark = pytest.mark.django_db(transaction=True)


def doc(i, **extra):
    return signup_doc(f"doc-{i:03d}", f"Shop {i}", **{"users": [f"owner{i}@example.com"], **extra})


@pytest.fixture
def feed(signups_feed):
    return signups_feed


def test_import_keeps_every_document_valid_or_not(feed):
    feed.bulk_docs([doc(i) for i in range(5)])
    feed.bulk_docs(
        [
            doc(100, company={"name": "www"}),
            doc(101, users=[], company={"name": "Evil\nimage: x"}),
            {"_id": "doc-102", "queue_state": "deploy", "company": "nope"},
        ]
    )
    summary = signups_sync(client=feed, batch_size=3)
    assert (summary.imported, summary.rejected, summary.withdrawn) == (5, 3, 0)
    assert summary.read == 8 == Signup.objects.count()
    rejected = Signup.objects.get(couch_id="doc-100")
    assert rejected.status == Signup.Status.REJECTED
    assert any("reserved" in r for r in rejected.reasons)
    assert rejected.raw["company"] == {"name": "www"}
    evil = Signup.objects.get(couch_id="doc-101")
    assert evil.status == Signup.Status.REJECTED and len(evil.reasons) >= 2
    ok = Signup.objects.get(couch_id="doc-003")
    assert (ok.status, ok.requested_name, ok.owner_email) == (
        "pending",
        "shop-3",
        "owner3@example.com",
    )
    assert SyncCheckpoint.objects.get(database=feed.database).last_seq == summary.checkpoint


def test_replayed_feed_creates_no_duplicates(feed):
    feed.bulk_docs([doc(i) for i in range(6)])
    first = signups_sync(client=feed, batch_size=4)
    SyncCheckpoint.objects.update(last_seq=None)  # the feed repeats everything
    again = signups_sync(client=feed, batch_size=4)
    assert first.imported == 6
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 6)
    assert Signup.objects.count() == 6


def test_duplicate_names_in_one_batch_are_refused_for_the_second(feed):
    feed.bulk_docs([doc(1), doc(2, company={"name": "Shop 1"})])
    signups_sync(client=feed)
    second = Signup.objects.get(couch_id="doc-002")
    assert second.status == Signup.Status.REJECTED
    assert any("taken" in r for r in second.reasons)


def test_new_revisions_deleted_docs_and_approved_ones(feed):
    feed.bulk_docs([doc(1), doc(2), doc(3, company={"name": "www"})])
    signups_sync(client=feed)
    signups_approve(signups=Signup.objects.filter(couch_id="doc-002"), actor="tester")
    # A new revision of each: a rename of a pending one, a fix of a rejected one,
    # a change to an approved one; and one deletion.
    for doc_id, change in [
        ("doc-001", {"company": {"name": "Renamed Shop"}}),
        ("doc-002", {"company": {"name": "Changed After Approval"}}),
        ("doc-003", {"company": {"name": "Fixed Name"}}),
    ]:
        feed.update(doc_id, lambda d, change=change: d.update(change))
    summary = signups_sync(client=feed)
    assert summary.updated == 3
    feed.delete("doc-001", feed.get("doc-001")["_rev"])
    summary = signups_sync(client=feed)
    assert summary.withdrawn == 1
    assert Signup.objects.get(couch_id="doc-001").status == Signup.Status.WITHDRAWN
    approved = Signup.objects.get(couch_id="doc-002")
    assert approved.status == Signup.Status.APPROVED
    assert approved.company_name == "Shop 2"  # the site is not changed behind staff's back
    assert approved.pending_change["company"]["name"] == "Changed After Approval"
    fixed = Signup.objects.get(couch_id="doc-003")
    assert (fixed.status, fixed.requested_name) == (Signup.Status.PENDING, "fixed-name")


def test_couchdb_down_mid_sync_loses_nothing_and_next_run_resumes(
    db, settings, couchdb_server_factory
):
    server = couchdb_server_factory()
    client = server.client("signups")
    client.ensure_database()
    client.bulk_docs([doc(i) for i in range(20)])
    settings.COUCHDB_URL = server.url
    settings.COUCHDB_SIGNUPS_DB = "signups"

    paused: list[int] = []

    def stop_after_first_batch(count):
        if not paused:  # once: a page read ahead before the pause is still stored
            paused.append(count)
            server.pause()

    with pytest.raises(Exception) as failure:
        signups_sync(client=client, batch_size=4, progress=stop_after_first_batch)
    assert "unreachable" in str(failure.value)
    stored = Signup.objects.count()
    # The first batch was committed with its checkpoint; the next two may have been read ahead
    # (the feed is read up to two pages ahead of the store) and stored before the failure.
    assert stored in (4, 8, 12)
    checkpoint = SyncCheckpoint.objects.get(database="signups")
    assert checkpoint.locked_by == ""  # the lock is released after a failure

    with pytest.raises(CommandError, match="checkpoint unchanged"):
        call_command("sync_signups", stdout=io.StringIO())
    assert SyncCheckpoint.objects.get(database="signups").last_seq == checkpoint.last_seq

    server.resume()
    out = io.StringIO()
    call_command("sync_signups", "--batch-size", "4", stdout=out)
    assert f"imported {20 - stored}" in out.getvalue()
    assert Signup.objects.count() == 20


def test_overlapping_runs_are_locked_out(feed):
    feed.bulk_docs([doc(1)])
    signups_sync(client=feed)
    SyncCheckpoint.objects.update(locked_by="other-run", locked_until="2999-01-01T00:00:00Z")
    with pytest.raises(SyncLocked, match="other-run"):
        signups_sync(client=feed)
    with pytest.raises(CommandError, match="already running"):
        call_command("sync_signups", stdout=io.StringIO())


def test_staff_rejection_is_written_back_and_its_echo_is_not_a_change(feed):
    feed.bulk_docs([doc(1)])
    signups_sync(client=feed)
    signup = Signup.objects.get()
    assert signup_reject(signup=signup, actor="tester", reason="spam")
    assert signups_write_back(client=feed) == 1
    stored = feed.get("doc-001")
    assert stored["queue_state"] == "rejected"
    assert stored["rejection_reasons"] == ["rejected by staff: spam"]
    echo = signups_sync(client=feed)
    assert (echo.unchanged, echo.updated) == (1, 0)
    assert Signup.objects.get().writeback == Signup.WriteBack.DONE
    assert AuditEvent.objects.filter(action="signup.write_back").count() == 1


def test_write_back_that_cannot_be_done_stays_pending(feed, couchdb_unreachable_url):
    feed.bulk_docs([doc(1)])
    signups_sync(client=feed)
    signup_reject(signup=Signup.objects.get(), actor="tester", reason="spam")
    errors = []
    with CouchDB(couchdb_unreachable_url, feed.database) as down:
        assert signups_write_back(client=down, errors=errors) == 0
    assert Signup.objects.get().writeback == Signup.WriteBack.PENDING
    assert errors and "unreachable" in errors[0]
    assert "pw" not in errors[0].split("@")[0] or "***" in errors[0]
    summary = signups_sync(client=feed)  # the next run retries it
    assert summary.written_back == 1


def test_command_prints_summary(feed):
    feed.bulk_docs([doc(i) for i in range(3)] + [doc(9, company={"name": "api"})])
    out = io.StringIO()
    call_command("sync_signups", stdout=out)
    line = out.getvalue().strip()
    assert line.startswith("imported 3, updated 0, rejected 1, withdrawn 0")
    assert "checkpoint" in line
    assert not Site.objects.exists()


def test_names_freed_by_renames_and_withdrawals_can_be_claimed_in_the_same_run(feed):
    feed.bulk_docs([doc(1), doc(2)])
    signups_sync(client=feed)
    feed.update("doc-001", lambda d: d.update(site_name="renamed-shop"))  # frees "shop-1"
    feed.delete("doc-002", feed.get("doc-002")["_rev"])  # frees "shop-2"
    feed.bulk_docs([doc(3, site_name="shop-1"), doc(4, site_name="shop-2")])
    signups_sync(client=feed, batch_size=2)
    names = dict(Signup.objects.values_list("couch_id", "requested_name"))
    statuses = dict(Signup.objects.values_list("couch_id", "status"))
    assert names["doc-001"] == "renamed-shop" and statuses["doc-002"] == "withdrawn"
    assert (names["doc-003"], statuses["doc-003"]) == ("shop-1", "pending")
    assert (names["doc-004"], statuses["doc-004"]) == ("shop-2", "pending")


def test_maintenance_window_from_the_feed_reaches_the_site(feed):
    feed.bulk_docs(
        [
            doc(1, maintenance_window="sun 2:00-5:00 Europe/London"),
            doc(2, maintenance_window="Sun 02:00-05:00 Mars/Olympus"),
        ]
    )
    signups_sync(client=feed)
    ok, bad = Signup.objects.get(couch_id="doc-001"), Signup.objects.get(couch_id="doc-002")
    assert ok.maintenance_window == "Sun 02:00-05:00 Europe/London"
    assert bad.status == Signup.Status.REJECTED
    assert any(r.startswith("maintenance_window: unknown time zone") for r in bad.reasons)
    # A new revision of a pending signup changes its window.
    feed.update("doc-001", lambda d: d.update(maintenance_window="Sat 01:00-02:00 UTC"))
    signups_sync(client=feed)
    ok.refresh_from_db()
    assert ok.maintenance_window == "Sat 01:00-02:00 UTC"
    [site] = signups_approve(signups=[ok], actor="tester")
    assert Site.objects.get(pk=site.pk).maintenance_window == "Sat 01:00-02:00 UTC"
