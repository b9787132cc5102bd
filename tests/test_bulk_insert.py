"""subscribie_admin/bulk_insert.py stores exactly what the ORM would, from instances or rows."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import transaction
from django.forms.models import model_to_dict

import audit
from audit.models import AuditEvent
from rollouts.models import Rollout, RolloutTarget
from sites.models import Signup, Site
from subscribie_admin.bulk_insert import JSONText, insert_rows, json_text, new_row

pytestmark = pytest.mark.django_db(transaction=True)

AUTO = {"id", "created_at", "updated_at", "received_at"}  # keys and times of the moment


def stored(model, **filters) -> dict:
    row = model_to_dict(model.objects.get(**filters))
    return {k: v for k, v in row.items() if k not in AUTO}


def test_rows_and_instances_store_what_the_orm_stores() -> None:
    site = Site.objects.create(slug="bobs-bakery", title="Bob's", owner_email="bob@example.com")
    rollout = Rollout.objects.create(image="subscribie/subscribie:v2", waves="1,100%")
    when = datetime(2026, 12, 4, 2, 30, tzinfo=UTC)
    target = {"site_id": site.pk, "wave": 1, "position": 7, "to_image": "x:v2", "patched_at": when}
    signup = {"couch_id": "doc-1", "couch_rev": "1-a", "raw": {"name": "Bob's <b>"},
              "reasons": ["a", "ü"], "status": Signup.Status.REJECTED}  # fmt: skip

    RolloutTarget.objects.create(rollout=rollout, **target)
    Signup.objects.create(**signup)
    expected_target = stored(RolloutTarget, position=7)
    expected_signup = stored(Signup, couch_id="doc-1")
    RolloutTarget.objects.all().delete()
    Signup.objects.all().delete()

    with transaction.atomic():
        insert_rows(RolloutTarget, [new_row(RolloutTarget, rollout_id=rollout.pk, **target)])
        insert_rows(Signup, [new_row(Signup, **signup)])
    assert stored(RolloutTarget, position=7) == expected_target
    assert stored(Signup, couch_id="doc-1") == expected_signup
    assert RolloutTarget.objects.get(position=7).updated_at is not None
    assert Signup.objects.get(couch_id="doc-1").received_at is not None

    Signup.objects.create(couch_id="doc-orm", raw={})
    with transaction.atomic():
        insert_rows(Signup, [Signup(couch_id="doc-2", raw={})])  # an instance does as well
    assert stored(Signup, couch_id="doc-2") == {
        **stored(Signup, couch_id="doc-orm"),
        "couch_id": "doc-2",
    }


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 12, 4, 2, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 12, 4, 2, 30, tzinfo=timezone(timedelta(hours=2))),  # not UTC
    ],
)
def test_date_times_read_back_as_the_orm_stores_them(when) -> None:
    one, two = (
        Site.objects.create(slug=slug, title=slug, owner_email="bob@example.com")
        for slug in ("site-one", "site-two")
    )
    rollout = Rollout.objects.create(image="subscribie/subscribie:v2", waves="1,100%")
    target = {"rollout_id": rollout.pk, "wave": 1, "to_image": "x:v2", "patched_at": when}
    RolloutTarget.objects.create(position=1, site_id=one.pk, **target)
    with transaction.atomic():
        insert_rows(RolloutTarget, [new_row(RolloutTarget, position=2, site_id=two.pk, **target)])
    orm, ours = (RolloutTarget.objects.get(position=n).patched_at for n in (1, 2))
    assert ours == orm == when


def test_audit_rows_in_bulk_read_back_as_one_recorded_alone() -> None:
    site = Site.objects.create(slug="bobs-bakery", title="Bob's", owner_email="bob@example.com")
    event = {"action": "target.done", "actor": "system:engine", "site": site,
             "data": {"wave": 2}, "ok": False, "message": "it <broke>"}  # fmt: skip
    with transaction.atomic():
        audit.record(**event)
        audit.record_many([event, event])
    one, *many = (model_to_dict(e) for e in AuditEvent.objects.order_by("id"))
    assert len(many) == 2
    for row in many:
        assert {k: v for k, v in row.items() if k != "id"} == {
            k: v for k, v in one.items() if k != "id"
        }


def test_rows_must_be_inserted_in_a_transaction() -> None:
    with pytest.raises(RuntimeError, match="transaction"):
        insert_rows(Signup, [new_row(Signup, couch_id="doc-3")])
    assert not Signup.objects.exists()


@pytest.mark.parametrize(
    "value",
    [
        {"name": 'Café ü \u2028 \\ "q"', "n": [1, 2.5, -0.0, 10**30], "ok": True},
        ["a", "ü"],
        [],
        {"x": None, "nested": {"a": [None]}},  # null: left to json.dumps
        "plain",
    ],
)
def test_json_text_is_the_json_of_json_dumps(value) -> None:
    assert json.loads(json_text(value)) == json.loads(json.dumps(value))


def test_json_text_keeps_what_json_dumps_keeps_and_refuses_what_it_refuses() -> None:
    text = json_text({"a": math.nan, "b": math.inf})  # msgspec alone would write null
    assert text == json.dumps({"a": math.nan, "b": math.inf})
    with pytest.raises(TypeError):
        json_text({"a": object()})


def test_json_text_given_as_text_is_stored_as_the_value_it_encodes() -> None:
    # A document's text as it came off the wire goes in as it is, and reads back as the
    # document; an empty list or object as well (they skip the encoder).
    raw = {"_id": "doc-t", "name": "Café \u2028", "n": [1, 2.5, None, True, 10**30]}
    with transaction.atomic():
        insert_rows(
            Signup,
            [
                new_row(Signup, couch_id="doc-t", raw=JSONText(json.dumps(raw)), reasons=[]),
                new_row(Signup, couch_id="doc-e", raw={}, reasons=["r"]),
            ],
        )
    stored = Signup.objects.get(couch_id="doc-t")
    assert (stored.raw, stored.reasons) == (raw, [])
    assert Signup.objects.filter(raw={}, reasons=["r"]).get().couch_id == "doc-e"
