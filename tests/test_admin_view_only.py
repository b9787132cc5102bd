"""A staff user who may only view reaches no action, confirmation page or POST that changes state.

Every admin URL (walked from the URL resolver, custom views included) is requested with GET and
with POSTs carrying every confirmation field the admin knows; every changelist action of every
ModelAdmin is POSTed unconfirmed and confirmed. After each request nothing has changed: database
rows (audit rows included), the cluster objects on kubesim, the CouchDB documents, and no job
was queued. Pages that would let their user change something are refused too.
"""

from __future__ import annotations

import pytest
from django.test import Client

from rollouts.admin_actions import SESSION_KEY
from tests.fixtures.admin_surface import (
    CONFIRMATION_TEMPLATES,
    action_payloads,
    admin_actions,
    admin_urls,
    attack_fields,
    diff,
    offered_forms,
    state_of,
)

pytestmark = pytest.mark.django_db

ALLOWED_STATUSES = {200, 302, 403, 404, 405}


def viewer_client(world) -> Client:
    client = Client()
    client.force_login(world.viewer)
    session = client.session
    # As if the viewer had started a flow: the flows' own permission checks must refuse it.
    session[SESSION_KEY] = {"mode": "selected", "ids": [site.pk for site in world.sites]}
    session.save()
    return client


def assert_refused_and_unchanged(
    response, what: str, before, world, callbacks, *, own_records: bool = False
) -> None:
    assert response.status_code in ALLOWED_STATUSES, f"{what}: HTTP {response.status_code}"
    templates = [t.name for t in response.templates if t.name]
    shown = [name for name in templates if CONFIRMATION_TEMPLATES.search(name)]
    assert not shown, f"{what}: a view-only user was shown {shown}"
    if response.get("Content-Type", "").startswith("text/html"):
        offered = offered_forms(response.content.decode())
        assert not offered, f"{what}: a view-only user was offered {offered}"
    assert not callbacks, f"{what}: queued {len(callbacks)} job(s) on commit"
    after = state_of(world)
    if own_records:  # logging out stamps the viewer's own login record, nothing else
        after["db"]["axes.AccessLog"] = before["db"]["axes.AccessLog"]
    assert after == before, f"{what}: changed {diff(before, after)}"


def test_every_admin_url_refuses_a_view_only_user(world, django_capture_on_commit_callbacks):
    urls = admin_urls(world)
    client = viewer_client(world)
    before = state_of(world)
    logout = [url for url in urls if url.name == "admin:logout"]
    assert logout, "the admin's logout URL was not found: the walk is broken"
    requested = 0
    # Logout last: it ends the session the other requests need.
    for url in [u for u in urls if u.name != "admin:logout"] + logout:
        for method, data in (("get", None), ("post", {}), ("post", attack_fields(world))):
            with django_capture_on_commit_callbacks() as callbacks:
                response = getattr(client, method)(url.path, data)
            assert_refused_and_unchanged(
                response, f"{method.upper()} {url}", before, world, callbacks,
                own_records=url.name == "admin:logout",
            )  # fmt: skip
            requested += 1
            if url.name != "admin:logout":
                assert "_auth_user_id" in client.session, f"{url} logged the viewer out"
    # The walk found the custom views of rollouts/admin.py and sites/admin.py, not just CRUD.
    names = {url.name for url in urls}
    assert {"admin:rollouts_rollout_upgrade", "admin:rollouts_rollout_skip",
            "admin:rollouts_rollout_control", "admin:rollouts_rollout_rollback",
            "admin:sites_site_changelist", "admin:index"} <= names  # fmt: skip
    print(f"view-only walk: {len(urls)} admin URLs, {requested} requests")


def test_every_admin_action_refuses_a_view_only_user(world, django_capture_on_commit_callbacks):
    actions = admin_actions(world.superuser)
    offered_to_viewer = {str(a) for a in admin_actions(world.viewer)}
    client = viewer_client(world)
    before = state_of(world)
    # Every action staff can ever be offered, not only those offered to the viewer.
    assert {"sites.Signup:approve_signups", "sites.Site:delete_sites",
            "sites.Site:upgrade_all_sites", "audit.AuditEvent:export_csv"} <= {
        str(a) for a in actions
    }  # fmt: skip
    for action in actions:
        for data in action_payloads(action, world):
            with django_capture_on_commit_callbacks() as callbacks:
                response = client.post(action.changelist, data)
            what = f"action {action} ({'confirmed' if 'post' in data else 'unconfirmed'})"
            assert_refused_and_unchanged(response, what, before, world, callbacks)
            if response.status_code == 302 and str(action) not in offered_to_viewer:
                assert "/rollouts/" not in response["Location"], f"{what}: opened a flow"
    print(f"view-only actions: {len(actions)} actions, offered to the viewer: {offered_to_viewer}")


def test_the_viewer_is_offered_only_actions_that_change_nothing(world):
    """What a view-only user sees in the action menu: reading actions only (the CSV export)."""
    offered = {str(a) for a in admin_actions(world.viewer)}
    every = {str(a) for a in admin_actions(world.superuser)}
    assert offered <= every
    # Each offered action was run above and changed nothing; here: the menu is that small.
    assert offered == {"audit.AuditEvent:export_csv"}, offered
