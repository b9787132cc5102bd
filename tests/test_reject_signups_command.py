"""reject_signups from the command line: the admin's reject action for scripts (audited, the
document written back to CouchDB as rejected)."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from sites.models import Signup
from sites.sync import signups_sync
from tests.fixtures.couchdb import signup_doc

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pending(signups_feed):
    signups_feed.bulk_docs([signup_doc(f"rej-{i}", f"Reject Shop {i}") for i in range(3)])
    signups_sync(client=signups_feed)
    return list(Signup.objects.order_by("pk"))


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_reject_by_id_is_audited_and_written_back(pending, signups_feed, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", "b@example.com", "pw-boss-123")
    first, second, third = pending
    out, _ = run(
        "reject_signups", str(first.pk), str(second.pk), "--reason", "spam", "--as", "boss",
        "--sync",
    )  # fmt: skip
    assert f"rejected 2: {first.pk} Reject Shop 0, {second.pk} Reject Shop 1" in out
    assert "written back 2" in out
    first.refresh_from_db()
    assert first.status == Signup.Status.REJECTED
    assert first.reasons[-1] == "rejected by staff: spam"
    assert first.writeback == Signup.WriteBack.DONE
    events = AuditEvent.objects.filter(action="signup.reject")
    assert sorted(events.values_list("subject", flat=True)) == ["rej-0", "rej-1"]
    assert {e.actor for e in events} == {boss} and events[0].data == {"reason": "spam"}
    doc = signups_feed.get("rej-0")
    assert doc["queue_state"] == "rejected"
    assert doc["rejection_reasons"][-1] == "rejected by staff: spam"
    third.refresh_from_db()
    assert third.status == Signup.Status.PENDING  # not named, untouched


def test_without_sync_the_write_back_is_queued_not_done(pending):
    run("reject_signups", str(pending[0].pk), "--reason", "duplicate")
    signup = Signup.objects.get(pk=pending[0].pk)
    assert signup.status == Signup.Status.REJECTED
    assert signup.writeback == Signup.WriteBack.PENDING  # for the write-back job
    assert AuditEvent.objects.get(action="signup.reject").actor_label == "system:cli"


def test_bad_input_changes_nothing(pending, django_user_model):
    with pytest.raises(CommandError, match="reason"):
        run("reject_signups", str(pending[0].pk))
    with pytest.raises(CommandError, match="must not be empty"):
        run("reject_signups", str(pending[0].pk), "--reason", "  ")
    with pytest.raises(CommandError, match="at most 500"):
        run("reject_signups", str(pending[0].pk), "--reason", "x" * 501)
    with pytest.raises(CommandError, match="no signup with id 999999"):
        run("reject_signups", str(pending[0].pk), "999999", "--reason", "spam")
    django_user_model.objects.create_user("clerk", password="pw-clerk-123")
    with pytest.raises(CommandError, match="clerk may not reject"):
        run("reject_signups", str(pending[0].pk), "--reason", "spam", "--as", "clerk")
    with pytest.raises(CommandError, match="no user 'ghost'"):
        run("reject_signups", str(pending[0].pk), "--reason", "spam", "--as", "ghost")
    assert set(Signup.objects.values_list("status", flat=True)) == {Signup.Status.PENDING}
    assert not AuditEvent.objects.filter(action="signup.reject").exists()


def test_an_approved_signup_is_skipped_and_said_so(pending):
    from sites.services import signups_approve

    signups_approve(signups=[pending[0]], actor="staff")
    out, err = run("reject_signups", str(pending[0].pk), str(pending[1].pk), "--reason", "late")
    assert "rejected 1:" in out and f"skipped 1: {pending[0].pk} (approved)" in err
    assert Signup.objects.get(pk=pending[0].pk).status == Signup.Status.APPROVED
