"""CSRF on every state-changing POST, no open redirect through ``next``, no framing of any page.

Every admin URL and every changelist action comes from the resolver and the ModelAdmins
(tests/fixtures/admin_surface.py), so views added later are covered without editing this file.
The user is a superuser: the only thing that can refuse these requests is the check under test.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from sites.models import Site
from tests.fixtures.admin_surface import (
    action_payloads,
    admin_actions,
    admin_urls,
    attack_fields,
    diff,
    state_of,
)

pytestmark = pytest.mark.django_db

HOSTILE_NEXT = [
    "https://evil.example/",
    "//evil.example/",
    "///evil.example/",
    "\\\\evil.example/",
    "/\\evil.example/",
    "\\/evil.example/",
    "https:/evil.example/",
    "http:evil.example",
    " https://evil.example/",
    "https://testserver@evil.example/",
    "javascript:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
    "%2F%2Fevil.example/",
    "/%09/evil.example/",
]


C0_AND_SPACE = "".join(map(chr, range(0x21)))

# The whole list is tried on login and logout, which do redirect to ``next``; every other URL
# gets one target of each shape (absolute, scheme-relative, backslash), to keep the walk short.
WALK_NEXT = ["https://evil.example/", "//evil.example/", "/\\evil.example/"]


def browser_target(location: str, base: str) -> tuple[str, str]:
    """(scheme, host) a browser goes to for ``Location: location`` on page ``base``.

    As the WHATWG URL parser does: leading/trailing spaces and controls dropped, tabs and
    newlines removed anywhere, and a backslash read as a slash.
    """
    cleaned = "".join(ch for ch in location.strip(C0_AND_SPACE) if ch not in "\t\n\r")
    parts = urlsplit(urljoin(base, cleaned.replace("\\", "/")))
    return parts.scheme, parts.hostname or ""


SERVER = "http://testserver"


def assert_local(location: str, what: str, base: str = SERVER + "/admin/") -> None:
    """A redirect target that stays on this site (the test client's host is ``testserver``)."""
    scheme, host = browser_target(location, base)
    assert (scheme, host) in (("http", "testserver"), ("https", "testserver")), (
        f"{what}: redirects to {location!r} ({scheme}://{host})"
    )


def superuser_client(world, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(world.superuser)
    return client


# --- CSRF -----------------------------------------------------------------------------------------


def test_every_admin_post_without_a_csrf_token_is_refused(
    world, django_capture_on_commit_callbacks
):
    client = superuser_client(world, csrf=True)
    before = state_of(world)
    urls = admin_urls(world)
    for url in urls:
        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post(url.path, attack_fields(world))
        assert response.status_code == 403, f"POST {url} without CSRF: {response.status_code}"
        assert b"CSRF" in response.content, f"POST {url}: refused, but not by the CSRF check"
        assert not callbacks
        assert state_of(world) == before, f"POST {url}: changed {diff(before, state_of(world))}"
    actions = admin_actions(world.superuser)
    for action in actions:
        for data in action_payloads(action, world):
            with django_capture_on_commit_callbacks() as callbacks:
                response = client.post(action.changelist, data)
            assert response.status_code == 403, f"action {action} without CSRF"
            assert not callbacks
            after = state_of(world)
            assert after == before, f"action {action}: changed {diff(before, after)}"
    assert "_auth_user_id" in client.session  # logout without a token did not log out either
    print(f"CSRF: {len(urls)} URLs and {len(actions)} actions refused without a token")


def test_a_forged_or_stale_token_is_refused_and_the_real_one_works(world):
    """The refusal above is the CSRF check: the same confirmed POST with the page's token acts."""
    client = superuser_client(world, csrf=True)
    changelist = reverse("admin:sites_site_changelist")
    client.get(changelist)
    token = client.cookies["csrftoken"].value
    data = {
        "action": "hold_sites",
        "_selected_action": [str(world.sites[0].pk)],
        "post": "yes",
        "confirm-reason": "freeze",
    }
    forged = "x" * len(token)
    other = Client(enforce_csrf_checks=True)
    other.get(reverse("admin:login"))
    stale = other.cookies["csrftoken"].value  # another browser's token
    for bad in (forged, stale):
        response = client.post(changelist, {**data, "csrfmiddlewaretoken": bad})
        assert response.status_code == 403
        assert Site.objects.get(pk=world.sites[0].pk).hold_reason == ""
    response = client.post(changelist, {**data, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Site.objects.get(pk=world.sites[0].pk).hold_reason == "freeze"


# --- open redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_login_and_logout_never_redirect_off_site(client, django_user_model, target):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    login = reverse("admin:login")
    page = client.get(login, {"next": target})
    assert page.status_code == 200
    response = client.post(
        f"{login}?next={target}",
        {"username": "boss", "password": "pw-boss-123456", "next": target},
    )
    assert response.status_code == 302, response.content[:300]
    assert_local(response["Location"], f"login next={target!r}", SERVER + login)
    assert "_auth_user_id" in client.session
    response = client.post(reverse("admin:logout"), {"next": target})
    if response.status_code == 302:
        assert_local(response["Location"], f"logout next={target!r}")
    assert "_auth_user_id" not in client.session


def test_no_admin_url_redirects_off_site_through_next(world):
    """Every admin URL, GET and POST, with every redirect parameter set to a hostile target.

    Not POSTed: logout and delete pages (a superuser's non-empty POST deletes, which is the
    admin working; it would take away the objects and the user the other URLs need).
    """
    client = superuser_client(world)
    urls = [url for url in admin_urls(world) if url.name != "admin:logout"]
    for url in urls:
        for target in WALK_NEXT:
            params = {"next": target, "redirect_to": target, "_changelist_filters": target}
            responses = [client.get(url.path, params)]
            if not url.name.endswith("_delete"):
                responses.append(client.post(url.path, params))
            for response in responses:
                if response.status_code in (301, 302, 303, 307, 308):
                    assert_local(response["Location"], f"{url} next={target!r}", SERVER + url.path)
                body = response.content.decode(errors="replace")
                assert f'href="{target}' not in body, f"{url} links to {target!r}"
                assert f"url={target}" not in body.lower(), f"{url} refreshes to {target!r}"
        assert "_auth_user_id" in client.session, f"{url} logged the superuser out"
    print(f"open redirects: {len(urls)} URLs x {len(WALK_NEXT)} targets x GET/POST")


# --- clickjacking ---------------------------------------------------------------------------------


def assert_unframeable(response, what: str) -> None:
    assert response.get("X-Frame-Options") == "DENY", f"{what}: X-Frame-Options"
    csp = response.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, f"{what}: CSP {csp!r}"


def test_every_page_refuses_to_be_framed(world, client):
    superuser = superuser_client(world)
    urls = admin_urls(world)
    for url in urls:
        assert_unframeable(superuser.get(url.path), f"GET {url}")
        assert_unframeable(client.get(url.path), f"GET {url} (anonymous)")
    export = superuser.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "export_csv", "_selected_action": ["1"], "select_across": "1"},
    )
    assert export["Content-Type"].startswith("text/csv")
    assert_unframeable(export, "CSV export")
    for path in ("/", "/healthz", "/no-such-page"):
        assert_unframeable(client.get(path), path)
    print(f"clickjacking: {len(urls)} URLs, as superuser and anonymous")
