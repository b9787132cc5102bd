"""Real-browser tests: Playwright for Python driving Debian's Chromium against the live server.

``make test`` installs Chromium when it is missing and we are root (``make chromium``). These
tests skip only when Chromium cannot be found or started, saying why; with
``BROWSER_TESTS_REQUIRED=1`` (set by ``.ci/run``) that is a failure instead, so CI always runs
them. The Playwright browser download is not used: ``executable_path`` is Debian's binary.

Each test gets the live server (pytest-django), kubesim, a CouchDB-compatible server and a real
``manage.py qcluster`` on the test database, so what the page shows is what the product did.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.qcluster import running_qcluster

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("BROWSER_TESTS_REQUIRED", "") not in ("", "0")
PASSWORD = "browser-test-pw-1"  # a throwaway test user's

# Playwright's sync API runs an event loop in this thread while it is started; the tests' own
# ORM calls are plain synchronous code all the same (the pytest-playwright documentation's
# advice). Set only while Playwright runs (never for the rest of the suite or child processes).
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"browser tests are required (BROWSER_TESTS_REQUIRED) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc}); run make install")
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if not path or not os.access(path, os.X_OK):
        _unavailable(
            f"Chromium not found at {CHROMIUM}: install it with `apt-get install chromium` "
            "(`make test` does so when run as root)"
        )
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv(ASYNC_UNSAFE, "true")
    playwright = sync_playwright().start()
    try:
        try:
            # --no-sandbox: the suite runs as root in CI, where Chromium's sandbox refuses to start.
            chromium = playwright.chromium.launch(
                executable_path=path, headless=True, args=["--no-sandbox"]
            )
        except Exception as exc:
            _unavailable(f"Chromium at {path} did not start: {exc}")
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        monkeypatch.undo()


@pytest.fixture(scope="session")
def live_server(request) -> Iterator[object]:
    """pytest-django's live server, with the plain-HTTP settings in force *before* it starts:
    its middleware (SSL redirect, secure cookies) is built once, with the server."""
    from django.test.utils import override_settings
    from pytest_django.live_server_helper import LiveServer

    plain_http = override_settings(
        SECURE_SSL_REDIRECT=False,
        SECURE_HSTS_SECONDS=0,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
    )
    plain_http.enable()
    server = LiveServer(request.config.getvalue("liveserver") or "127.0.0.1")
    try:
        yield server
    finally:
        server.stop()
        plain_http.disable()


@pytest.fixture
def app(settings, live_server, signups_feed, cluster_settings, kubesim, tmp_path) -> Iterator[str]:
    """The running product: live server URL, with a qcluster doing the background jobs."""
    settings.SITE_DEPLOY_WATCH_SECONDS = 60
    log_path = tmp_path / "qcluster.log"
    with (
        log_path.open("w") as log,
        running_qcluster(settings, str(kubesim.kubeconfig_path), log, ROLLOUT_JOB_SECONDS="5"),
    ):
        yield live_server.url
    print(Path(log_path).read_text()[-3000:])  # shown by pytest when the test failed


@pytest.fixture
def page(browser, app) -> Iterator[object]:
    context = browser.new_context(base_url=app, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def approver(django_user_model):
    """A second superuser: whole-fleet upgrades need someone other than their creator."""
    return django_user_model.objects.create_superuser("bob", "bob@example.com", PASSWORD)


@pytest.fixture
def viewer(django_user_model):
    """Staff who may look at everything and change nothing (the view permissions only)."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("victor", password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return user


def log_in(page, user) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def mark_page(page) -> None:
    """Tag the document; ``still_same_page`` is then true only if nothing reloaded it."""
    page.evaluate("window.__notReloaded = true")


def still_same_page(page) -> bool:
    return page.evaluate("window.__notReloaded === true")
