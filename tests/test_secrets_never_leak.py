"""The Kubernetes token and the CouchDB password never appear in logs, error pages, audit rows,
any database row, any admin page or the CSV export.

Both are set to recognisable values: a kubeconfig whose user authenticates with a bearer token
(kubesim accepts any), and a CouchDB server that requires its admin password. Then the real
flows run with every logger at DEBUG: import signups, approve them in the admin, deploy to the
cluster, refresh, write back, one deploy refused by the cluster, a sync and a write-back with
CouchDB down, and the DEBUG error page for that failure. Everything they produced is scanned.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter

from audit.models import AuditEvent
from sites import tasks
from sites.couchdb import CouchDB
from sites.models import Signup, Site
from tests.fixtures.admin_surface import admin_urls, db_state
from tests.fixtures.couchdb import signup_doc
from tests.fixtures.sites import wait_until

pytestmark = pytest.mark.django_db

KUBE_TOKEN = "kube-token-LEAKCANARY-7f3e9a1c5b2d4e6f"
COUCH_PASSWORD = "couch-pass-LEAKCANARY-9c8b7a6d"
SECRETS = (KUBE_TOKEN, COUCH_PASSWORD, quote(COUCH_PASSWORD, safe=""))
NOISY_LOGGERS = ("", "kubernetes", "urllib3", "httpx", "httpcore", "django", "django_q", "axes")


def token_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "sim", "cluster": {"server": server}}],
                "users": [{"name": "fleet-admin", "user": {"token": KUBE_TOKEN}}],
                "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "fleet-admin"}}],
                "current-context": "sim",
            }
        )
    )
    return path


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} holds a secret ({secret[:12]}...)"


@pytest.fixture
def secret_setup(world, kubesim, couchdb_server_factory, settings, tmp_path):
    """``world`` pointed at a token-authenticated cluster and a password-protected CouchDB."""
    settings.KUBECONFIG = str(token_kubeconfig(tmp_path / "kubeconfig", kubesim.url))
    server = couchdb_server_factory(admin=("admin", COUCH_PASSWORD))
    settings.COUCHDB_URL = server.url.replace("http://", f"http://admin:{COUCH_PASSWORD}@", 1)
    settings.COUCHDB_SIGNUPS_DB = "signups"
    settings.ADMINS = [("Ops", "ops@example.com")]  # error mails are rendered too
    with CouchDB(settings.COUCHDB_URL, "signups") as client:
        client.ensure_database()
        for i in range(3):
            client.put(signup_doc(f"leak-{i}", f"Leak Shop {i}", site_name=f"leak-shop-{i}"))
        client.put({"_id": "leak-bad", "queue_state": "deploy", "company": {"name": "\x00"}})
    return server


def test_secrets_stay_out_of_everything_the_flows_produce(
    secret_setup, world, kubesim, settings, caplog, capfd, mailoutbox,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    server = secret_setup
    for name in NOISY_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    out = io.StringIO()

    # Import, approve through the admin, deploy on the cluster, refresh, write back.
    call_command("sync_signups", stdout=out, stderr=out)
    client = Client()
    client.force_login(world.superuser)
    pending = list(Signup.objects.filter(couch_id__startswith="leak-", status="pending"))
    assert len(pending) == 3
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            reverse("admin:sites_signup_changelist"),
            {"action": "approve_signups", "post": "yes",
             "_selected_action": [str(s.pk) for s in pending]},
        )  # fmt: skip
    assert response.status_code == 302 and queued
    new_sites = list(Site.objects.filter(slug__startswith="leak-shop-").order_by("slug"))
    assert len(new_sites) == 3
    # The last deploy is refused by the cluster (RBAC-like 403), so an error is recorded.
    kubesim.faults.add("patch", "deployments", new_sites[-1].slug, status=403,
                       message="deployments is forbidden for fleet-admin")  # fmt: skip
    for site in new_sites:
        tasks.deploy_site(site.pk)
    failed = Site.objects.get(pk=new_sites[-1].pk)
    assert failed.status == Site.Status.FAILED and "forbidden" in failed.status_message

    # Pods turn ready on kubesim's clock, not ours: refresh until the deployed ones are live.
    def live() -> bool:
        tasks.refresh_site_status()
        return (
            Site.objects.filter(pk__in=[s.pk for s in new_sites[:-1]], status="live").count() == 2
        )

    wait_until(live, timeout=30, interval=0.2)
    tasks.write_back_signups()
    assert AuditEvent.objects.filter(result="error", site=failed).exists()
    assert kubesim.requests().counts, "the flows reached the cluster"
    with CouchDB(settings.COUCHDB_URL, "signups") as couch:
        assert couch.get("leak-0").get("queue_state") == "completed", "the password worked"

    # CouchDB down: the sync and the write-back fail, and the failure's DEBUG error page.
    server.stop()
    with pytest.raises(CommandError) as failure:
        call_command("sync_signups", stdout=out, stderr=out)
    Signup.objects.filter(couch_id="leak-1").update(writeback="pending")
    tasks.write_back_signups()
    request = RequestFactory().get(
        "/admin/", HTTP_AUTHORIZATION=f"Bearer {KUBE_TOKEN}",
        # As under runserver, where the process environment is part of request META.
        COUCHDB_URL=settings.COUCHDB_URL, KUBECONFIG=settings.KUBECONFIG,
    )  # fmt: skip
    request.user = world.superuser
    try:
        raise failure.value
    except CommandError:
        reporter = ExceptionReporter(request, *sys.exc_info())
        error_page, error_text = reporter.get_traceback_html(), reporter.get_traceback_text()
    assert "COUCHDB_URL" in error_page and "sync_signups" in error_text  # it is the real page
    logging.getLogger("django.request").error(
        "Internal Server Error: /admin/", exc_info=failure.value, extra={"request": request}
    )

    # Every page of the admin now, and the export of the whole audit history.
    pages = []
    for url in admin_urls(world):
        response = client.get(url.path)
        pages.append((str(url), response.content.decode(errors="replace")))
    export = client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "export_csv", "select_across": "1", "index": "0",
         "_selected_action": [str(AuditEvent.objects.first().pk)]},
    )  # fmt: skip
    assert export["Content-Type"].startswith("text/csv")

    captured = capfd.readouterr()
    scanned = {
        "log records": caplog.text
        + "\n".join(str(r.__dict__) for r in caplog.records),  # args and extras too
        "console log output": captured.out + captured.err,
        "command output": out.getvalue() + str(failure.value),
        "DEBUG error page": error_page,
        "error report text": error_text,
        "error mails": "\n".join(m.subject + m.body for m in mailoutbox),
        "audit rows": json.dumps(list(AuditEvent.objects.values()), default=str),
        "database rows": json.dumps(db_state(), default=str),
        "CSV export": export.content.decode(),
        **{f"admin page {name}": html for name, html in pages},
    }
    for where, text in scanned.items():
        assert_no_secret(text, where)
    # The scan looked at real output: the failures are in it, named without the secret.
    assert "CouchDB" in scanned["command output"]
    assert "forbidden" in scanned["audit rows"]
    assert any("signups" in text for text in (caplog.text, captured.err)) or caplog.records
    print(f"secrets scan: {len(scanned)} outputs, {len(pages)} admin pages, "
          f"{len(caplog.records)} log records")  # fmt: skip
