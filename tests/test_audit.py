"""Audit history: one writer, append-only everywhere, read-only admin with CSV export."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

import audit
from audit.models import AppendOnlyError, AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("alice", "alice@example.com", "pw-alice-123")
    client.force_login(user)
    return user


def test_record_writes_one_row_with_actor_and_data(staff):
    event = audit.record(
        action="site.approve", actor=staff, subject="bobs-bakery", data={"before": 1, "after": 2}
    )
    event.refresh_from_db()
    assert (event.actor, event.actor_label, event.action) == (staff, "alice", "site.approve")
    assert event.data == {"before": 1, "after": 2}
    assert event.result == AuditEvent.Result.OK
    system = audit.record(action="site.refresh", actor="system:cron", ok=False, message="boom")
    assert (system.actor, system.actor_label, system.result) == (None, "system:cron", "error")


def test_record_refuses_an_action_that_is_not_a_dotted_verb():
    with pytest.raises(ValueError, match="dotted verb"):
        audit.record(action="approve", actor=None)


def test_rows_cannot_be_updated_or_deleted_through_the_orm():
    event = audit.record(action="site.approve", actor=None, subject="x")
    event.message = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(message="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    event.refresh_from_db()
    assert event.message == ""


def test_admin_refuses_add_change_and_delete_even_for_superusers(client, staff):
    event = audit.record(action="site.approve", actor=staff, subject="bobs-bakery")
    change_url = reverse("admin:audit_auditevent_change", args=[event.pk])
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert client.post(change_url, {"message": "rewritten"}).status_code == 403
    delete_url = reverse("admin:audit_auditevent_delete", args=[event.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:audit_auditevent_changelist")
    response = client.post(
        changelist, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    assert response.status_code in (200, 302)
    # The detail page is viewable, read-only.
    page = client.get(change_url)
    assert page.status_code == 200 and b"bobs-bakery" in page.content
    assert AuditEvent.objects.get(pk=event.pk).message == ""


def test_admin_list_filters_and_search(client, staff):
    audit.record(action="site.approve", actor=staff, subject="bobs-bakery")
    audit.record(action="rollout.start", actor="system:cron", subject="rollout #1")
    url = reverse("admin:audit_auditevent_changelist")
    body = client.get(url, {"action__exact": "rollout.start"}).content.decode()
    assert "rollout #1" in body and "bobs-bakery" not in body
    body = client.get(url, {"q": "bakery"}).content.decode()
    assert "bobs-bakery" in body and "rollout #1" not in body


def test_csv_export_contains_selected_rows_and_neutralises_formulas(client, staff):
    first = audit.record(action="site.approve", actor=staff, subject="=HYPERLINK(evil)")
    second = audit.record(action="rollout.start", actor="system:cron", data={"image": "v2"})
    audit.record(action="site.delete", actor=staff, subject="not-selected")
    response = client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "export_csv", "_selected_action": [first.pk, second.pk]},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["action"] for r in rows] == ["site.approve", "rollout.start"]
    assert rows[0]["subject"] == "'=HYPERLINK(evil)"
    assert rows[1]["actor_label"] == "system:cron" and "v2" in rows[1]["data"]


def test_csv_export_needs_view_permission(client):
    clerk = get_user_model().objects.create_user("clerk", password="pw-clerk-123", is_staff=True)
    client.force_login(clerk)
    event = audit.record(action="site.approve", actor=None)
    response = client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "export_csv", "_selected_action": [event.pk]},
    )
    assert response.status_code == 403
