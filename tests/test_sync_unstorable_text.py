"""A signup document with characters no database stores (NUL, unpaired surrogates) is imported
as a rejected signup, and blocks none of the documents after it (found by
tests/test_admin_hostile_values.py importing the validation corpus through the feed)."""

import pytest

from sites.models import Signup, SyncCheckpoint
from sites.storable import storable_json
from sites.sync import signups_sync
from tests.fixtures.couchdb import signup_doc

pytestmark = pytest.mark.django_db


def test_unstorable_characters_are_replaced_and_the_feed_moves_on(signups_feed):
    signups_feed.put(
        signup_doc("lone-surrogate", "Bob\ud800s", note="x\ud800", extra={"\ud801": 1})
    )
    signups_feed.put(signup_doc("nul", "Nul\x00 Ltd"))
    signups_feed.put(signup_doc("after", "Baker After", site_name="baker-after"))

    summary = signups_sync(client=signups_feed)

    assert (summary.read, summary.rejected, summary.imported) == (3, 2, 1)
    surrogate = Signup.objects.get(couch_id="lone-surrogate")
    assert surrogate.status == Signup.Status.REJECTED
    assert any("U+D800" in reason for reason in surrogate.reasons)
    assert surrogate.company_name == "Bob\ufffds"
    assert surrogate.raw["note"] == "x\ufffd" and surrogate.raw["extra"] == {"\ufffd": 1}
    nul = Signup.objects.get(couch_id="nul")
    assert nul.status == Signup.Status.REJECTED and nul.company_name == "Nul\ufffd Ltd"
    assert any("U+0000" in reason for reason in nul.reasons)
    assert Signup.objects.get(couch_id="after").status == Signup.Status.PENDING
    assert SyncCheckpoint.objects.get(database=signups_feed.database).last_seq is not None


def test_storable_json_keeps_what_needs_no_change():
    doc = {"a": ["b", 1, None, True, {"c": "d\u00e9\U0001f370"}]}
    assert storable_json(doc) == doc
    assert storable_json({"k\x00": ["\udfff"]}) == {"k\ufffd": ["\ufffd"]}
