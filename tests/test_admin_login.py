"""Logging in to the admin: throttled and audited failures, expiring sessions, TOTP second factor.

All through the real login page and middleware stack (django-axes, django-otp), with DEBUG off
as in production. The suite's conftest turns the second factor off for the other tests (they
log in with ``force_login``); the tests here turn it back on.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
LOGIN = reverse("admin:login")
INDEX = reverse("admin:index")
PASSWORD = "pw-boss-correct-horse"


@pytest.fixture
def boss(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", PASSWORD)


def log_in(client: Client, password: str = PASSWORD, *, ip: str = "10.0.0.1", **extra):
    return client.post(
        LOGIN, {"username": "boss", "password": password, "next": INDEX, **extra}, REMOTE_ADDR=ip
    )


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- throttling -------------------------------------------------------------------------------


def test_repeated_failures_lock_the_login_out_and_are_audited(boss, settings):
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 5  # the default (LOGIN_FAILURE_LIMIT)
    client = Client()
    for attempt in range(limit):
        response = log_in(client, f"wrong-{attempt}")
        assert not logged_in(client)
    assert response.status_code == 429, "the last allowed failure locks out"
    # Now even the right password is refused from this address, and says why.
    response = log_in(client)
    assert response.status_code == 429
    assert b"locked" in response.content.lower()
    assert not logged_in(client)

    failed = AuditEvent.objects.filter(action="auth.login_failed").order_by("id")
    assert failed.count() == limit + 1  # the refused right password is a failure too
    assert {(e.subject, e.data["ip"], e.result) for e in failed} == {("boss", "10.0.0.1", "error")}
    # django-axes signals a lockout when the limit is reached and at each refused attempt.
    locked = AuditEvent.objects.filter(action="auth.locked_out")
    assert [(e.subject, e.data["ip"]) for e in locked] == [("boss", "10.0.0.1")] * 2
    for event in AuditEvent.objects.all():
        text = json.dumps([event.message, event.data, event.subject])
        assert "wrong-" not in text and PASSWORD not in text, "a password reached the audit"

    # Another address is not locked out (a colleague cannot be locked out from afar) ...
    other = Client()
    assert log_in(other, ip="10.0.0.2").status_code == 302 and logged_in(other)
    # ... and after the cool-off the first one may try again.
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME * 2)
    assert log_in(client).status_code == 302 and logged_in(client)


def test_the_lockout_list_cleanup_works_for_those_allowed_to_delete(boss):
    """django-axes' own action crashed (HTTP 500) outside a login request; it needs delete."""

    def attempt(username: str, ip: str) -> AccessAttempt:
        return AccessAttempt.objects.create(
            username=username, ip_address=ip, user_agent="t", failures_since_start=1,
            attempt_time=timezone.now(),
        )  # fmt: skip

    old, fresh = attempt("old", "10.1.1.1"), attempt("new", "10.1.1.2")
    AccessAttempt.objects.filter(pk=old.pk).update(attempt_time=timezone.now() - timedelta(days=2))
    client = Client()
    client.force_login(boss)
    response = client.post(
        reverse("admin:axes_accessattempt_changelist"),
        {"action": "cleanup_expired_attempts", "_selected_action": [old.pk, fresh.pk]},
    )
    assert response.status_code == 302
    assert list(AccessAttempt.objects.values_list("pk", flat=True)) == [fresh.pk]


# --- sessions -------------------------------------------------------------------------------------


def test_sessions_end_with_the_browser_and_after_the_session_age(boss, settings):
    assert settings.SESSION_COOKIE_AGE == 8 * 3600 and settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    settings.SESSION_COOKIE_AGE = 2
    client = Client()
    assert log_in(client).status_code == 302
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert not cookie["expires"] and not cookie["max-age"], "a browser-session cookie"
    assert cookie["secure"] and cookie["httponly"], "secure outside DEBUG, never read by JS"
    assert client.get(INDEX).status_code == 200
    time.sleep(2.5)
    response = client.get(INDEX)
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


# --- second factor ------------------------------------------------------------------------------


def token_for(secret: str, *, at: float | None = None) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key, step=30, digits=6)
    totp.time = at if at is not None else time.time()
    return f"{totp.token():06d}"


def enrol(username: str) -> str:
    out = io.StringIO()
    call_command("enrol_totp", username, stdout=out)
    return re.search(r"secret: (\w+)", out.getvalue()).group(1)


@pytest.fixture
def otp_on(settings):
    settings.ADMIN_REQUIRE_OTP = True
    return settings


def test_without_a_verified_device_no_admin_page_opens(otp_on, world):
    """Staff who passed the password but no second factor are refused on every admin URL."""
    from tests.fixtures.admin_surface import admin_urls

    client = Client()
    client.force_login(world.superuser)  # a password login, no device verified
    for url in admin_urls(world):
        response = client.get(url.path)
        if url.name in ("admin:login", "admin:logout"):
            continue
        assert response.status_code == 302, f"{url}: {response.status_code}"
        assert response["Location"].startswith(LOGIN), f"{url} -> {response['Location']}"


def test_the_password_alone_is_not_enough_and_a_valid_token_is(otp_on, boss):
    client = Client()
    response = log_in(client)
    assert response.status_code == 200 and b"otp_token" in response.content
    assert client.get(INDEX).status_code == 302  # password checked, but not verified

    secret = enrol("boss")
    device = TOTPDevice.objects.get(user=boss)
    assert device.confirmed
    wrong = "000000" if token_for(secret) != "000000" else "111111"
    assert log_in(client, otp_token=wrong).status_code == 200
    assert client.get(INDEX).status_code == 302, "a wrong token does not verify"
    time.sleep(1.1)  # django-otp throttles a device for 1 s after one failure (2 s, 4 s, ...)

    response = log_in(client, otp_token=token_for(secret))
    assert response.status_code == 302 and response["Location"] == INDEX
    assert client.get(INDEX).status_code == 200
    # A token is good once: replaying it in another browser is refused.
    replay = Client()
    log_in(replay, otp_token=token_for(secret))
    assert replay.get(INDEX).status_code == 302
    # Enrolment is audited, without the secret.
    event = AuditEvent.objects.get(action="auth.totp_enrol")
    assert event.subject == "boss" and secret not in json.dumps([event.message, event.data])


def test_with_two_devices_the_login_page_asks_which(otp_on, boss):
    enrol("boss")
    second = enrol("boss")
    client = Client()
    page = log_in(client, otp_token=token_for(second))
    assert page.status_code == 200 and b"Please select a device" in page.content
    choices = re.findall(r'<option value="([^"]+)">', page.content.decode())
    device = TOTPDevice.objects.filter(user=boss).order_by("pk").last()
    assert device.persistent_id in choices
    time.sleep(1.1)  # no device was tried, but be independent of django-otp's throttle
    response = log_in(client, otp_token=token_for(second), otp_device=device.persistent_id)
    assert response.status_code == 302 and client.get(INDEX).status_code == 200


def test_a_wrong_password_with_a_valid_token_is_refused(otp_on, boss):
    secret = enrol("boss")
    client = Client()
    response = log_in(client, "not-the-password", otp_token=token_for(secret))
    assert response.status_code == 200 and not logged_in(client)
    assert AuditEvent.objects.filter(action="auth.login_failed", subject="boss").count() == 1


def test_enrol_totp_refuses_unknown_and_non_staff_users_and_replaces(boss, django_user_model):
    django_user_model.objects.create_user("customer", "c@example.com", "pw-customer-1")
    with pytest.raises(CommandError, match="no user named"):
        call_command("enrol_totp", "nobody")
    with pytest.raises(CommandError, match="not staff"):
        call_command("enrol_totp", "customer")
    first = enrol("boss")
    second = enrol("boss")
    assert first != second and TOTPDevice.objects.filter(user=boss).count() == 2
    call_command("enrol_totp", "boss", "--replace", stdout=io.StringIO())
    assert TOTPDevice.objects.filter(user=boss).count() == 1


def test_the_admin_never_shows_a_device_secret(boss):
    """A view permission must not reveal another user's TOTP key (django-otp hides it)."""
    secret = enrol("boss")
    device = TOTPDevice.objects.get(user=boss)
    client = Client()
    client.force_login(boss)
    for name in ("change", "config", "qrcode"):
        response = client.get(reverse(f"admin:otp_totp_totpdevice_{name}", args=[device.pk]))
        page = response.content.decode()
        assert secret not in page and device.key not in page, name
        assert response.status_code in (200, 403)


# --- defaults, from the environment ---------------------------------------------------------------


def settings_in(**env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "PYTEST_VERSION")}
    clean.update({"SECRET_KEY": "k" * 60, **env})
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({n: getattr(s, n) "
        "for n in ('ADMIN_REQUIRE_OTP', 'SESSION_COOKIE_AGE', 'SESSION_EXPIRE_AT_BROWSER_CLOSE', "
        "'SESSION_COOKIE_SECURE', 'AXES_FAILURE_LIMIT')}))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=clean, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_second_factor_is_on_by_default_outside_debug_and_can_be_turned_off():
    production = settings_in(DEBUG="0")
    assert production == {
        "ADMIN_REQUIRE_OTP": True,
        "SESSION_COOKIE_AGE": 28800,
        "SESSION_EXPIRE_AT_BROWSER_CLOSE": True,
        "SESSION_COOKIE_SECURE": True,
        "AXES_FAILURE_LIMIT": 5,
    }
    demo = settings_in(DEBUG="1")
    assert demo["ADMIN_REQUIRE_OTP"] is False and demo["SESSION_COOKIE_SECURE"] is False
    tuned = settings_in(
        DEBUG="0", ADMIN_REQUIRE_OTP="0", SESSION_COOKIE_AGE="900", LOGIN_FAILURE_LIMIT="3",
        SESSION_EXPIRE_AT_BROWSER_CLOSE="0",
    )  # fmt: skip
    assert tuned["ADMIN_REQUIRE_OTP"] is False and tuned["SESSION_COOKIE_AGE"] == 900
    assert tuned["AXES_FAILURE_LIMIT"] == 3 and tuned["SESSION_EXPIRE_AT_BROWSER_CLOSE"] is False
