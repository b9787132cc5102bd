"""Hostile signup values are shown as text on every admin page and in the CSV export, never run.

The values: the validation corpus (tests/test_validation.py::HOSTILE, imported through the real
CouchDB feed and sync, so its rejection reasons are stored too) and markup payloads put in every
text field the database accepts them in: raw signup documents and validated fields, reasons,
write-back errors, site titles, owners, images, status messages and holds, rollout messages,
left-out reasons and target errors, audit subjects, messages and data, user names, device
names, login attempts and job rows. Then every admin URL (walked from the resolver), the change
page of every signup, every action's confirmation page, the upgrade and rollback flows with a
hostile image, and the CSV export are checked: no element, event handler or javascript: URL
from the data, and no spreadsheet formula in the export.
"""

from __future__ import annotations

import copy
import csv
import io
import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

import audit
from audit.models import AuditEvent
from rollouts.admin_actions import SESSION_KEY
from rollouts.models import Rollout, RolloutTarget
from sites.models import Signup, Site
from sites.sync import signups_sync
from tests.fixtures.admin_surface import admin_actions, admin_urls
from tests.test_validation import HOSTILE

pytestmark = pytest.mark.django_db

MARKER = "xss-"
PAYLOADS = [
    '<script>alert("xss-1")</script>',
    '"><img src=x onerror=alert("xss-2")>',
    "'><svg onload=alert('xss-3')>",
    'javascript:alert("xss-4")',
    "<a href=\"javascript:alert('xss-5')\">xss-5</a>",
    '</textarea></pre><script>alert("xss-6")</script>',
    '{{ 7*7 }}{% debug %}<iframe src=javascript:alert("xss-7")>',
    '<body onload=alert("xss-8")>',
    '=HYPERLINK("http://evil.example","xss-9")',
    "+cmd|' /C calc'!A0 xss-10",
    "-2+3+cmd|' /C calc'!A0 xss-11",
    "@SUM(1+1)*cmd|' /C calc'!A0 xss-12",
    '\t=cmd|"/C calc"!A0 xss-13',
]
# What markup from the data would look like if a page let it through unescaped.
UNESCAPED = re.compile(
    r"<script>alert|<img src=x onerror|<svg onload|<iframe src=javascript|<body onload"
    r"|<a href=\"javascript",
    re.IGNORECASE,
)
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "srcdoc", "xlink:href"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class MarkupScanner(HTMLParser):
    """Every element, event-handler attribute and javascript: URL on a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}={value!r}>")
            squeezed = re.sub(r"[\s\x00-\x1f]", "", value).lower()
            if name in URL_ATTRIBUTES and squeezed.startswith(("javascript:", "vbscript:")):
                self.problems.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and MARKER in data:
            self.problems.append(f"<script> running {data.strip()[:80]!r}")


def assert_inert(html: str, what: str) -> None:
    found = UNESCAPED.findall(html)
    assert not found, f"{what}: unescaped markup from the data: {found[:3]}"
    scanner = MarkupScanner()
    scanner.feed(html)
    assert not scanner.problems, f"{what}: {scanner.problems[:5]}"


def cut(value: str, length: int) -> str:
    return value[:length]


@pytest.fixture
def hostile_world(world):
    """``world`` with hostile values in every text field, and the validation corpus imported."""
    signups_before = Signup.objects.count()
    for case_id, doc, _kwargs, _expected in HOSTILE:
        if isinstance(doc, dict):
            doc = {k: v for k, v in copy.deepcopy(doc).items() if k != "_rev"}
            world.couch.put({**doc, "_id": f"corpus-{case_id}"})
    for i, payload in enumerate(PAYLOADS):
        world.couch.put(
            {
                "_id": f"markup-{i}",
                "queue_state": "deploy",
                "company": {"name": cut(payload, 100)},
                "site_name": f"markup-{i}",
                "users": [payload],
                "custom_domain": payload,
                "theme": {"name": payload, "colour": payload},
                "plans": [{"title": payload, "price": payload, "interval": payload}],
                payload: payload,
            }
        )
        # A valid document whose only oddity is its title: it lands pending, fields filled.
        world.couch.put(
            {
                "_id": f"markup-valid-{i}",
                "queue_state": "deploy",
                "company": {"name": cut(payload.replace("\t", " "), 100)},
                "site_name": f"markup-ok-{i}",
                "users": [f"owner{i}@example.com"],
            }
        )
    summary = signups_sync(client=world.couch)
    assert summary.read >= len(PAYLOADS) * 2
    assert Signup.objects.count() > signups_before + len(PAYLOADS)
    assert Signup.objects.filter(status=Signup.Status.PENDING, company_name=PAYLOADS[0]).exists()

    signups = list(Signup.objects.order_by("pk"))
    for i, signup in enumerate(signups):
        payload = PAYLOADS[i % len(PAYLOADS)]
        Signup.objects.filter(pk=signup.pk).update(
            writeback_error=payload,
            pending_change={"company": {"name": payload}} if i % 3 == 0 else None,
            reasons=[*signup.reasons, payload] if signup.status == "rejected" else signup.reasons,
        )
    world.objects[Signup] = signups

    for i, site in enumerate(world.sites):
        payload = PAYLOADS[i]
        Site.objects.filter(pk=site.pk).update(
            title=cut(payload, 100), status_message=payload, hold_reason=cut(payload, 200),
            owner_email=payload, observed_image=payload, theme_name=cut(payload, 40),
        )  # fmt: skip
    hostile_site = Site.objects.create(
        slug=cut('x"><script>alert("xss-s")</script>', 63), title=PAYLOADS[1],
        owner_email=PAYLOADS[2],
        custom_domain=PAYLOADS[3], theme_name="jesmond", theme_colour="#aa3355",
        image=PAYLOADS[4], status=Site.Status.FAILED, status_message=PAYLOADS[5],
        hold_reason=PAYLOADS[6], signup=signups[-1],
    )  # fmt: skip
    world.add(hostile_site)

    Rollout.objects.filter(pk=world.rollout_running.pk).update(
        status_message=PAYLOADS[0], left_out=[{"slug": PAYLOADS[1], "reason": PAYLOADS[2]}],
        actor_label=PAYLOADS[3],
    )  # fmt: skip
    Rollout.objects.filter(pk=world.rollout_done.pk).update(image=PAYLOADS[4])
    RolloutTarget.objects.filter(rollout=world.rollout_running).update(
        last_error=PAYLOADS[5], to_image=PAYLOADS[6]
    )
    for i, payload in enumerate(PAYLOADS):
        world.add(
            audit.record(
                action="site.deploy_failed", actor=payload, subject=payload, ok=i % 2 == 0,
                message=payload, data={"error": payload, payload: [payload]},
                site=hostile_site,
            )
        )  # fmt: skip

    User = get_user_model()
    evil = User.objects.create_user(cut(PAYLOADS[0], 150), "evil@example.com", "pw-evil-1")
    User.objects.filter(pk=evil.pk).update(first_name=PAYLOADS[1][:150], last_name=PAYLOADS[2])
    world.add(evil)
    world.device.name = PAYLOADS[3][:64]
    world.device.save()

    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django_q.models import Schedule, Task

    AccessAttempt.objects.update(username=PAYLOADS[4], user_agent=PAYLOADS[5])
    AccessLog.objects.update(user_agent=PAYLOADS[6])
    AccessFailureLog.objects.update(username=PAYLOADS[7], user_agent=PAYLOADS[0])
    Task.objects.update(name=PAYLOADS[1][:100], result=PAYLOADS[2])
    Schedule.objects.update(name=PAYLOADS[3][:100])
    return world


def test_every_admin_page_shows_hostile_values_as_text(hostile_world):
    world = hostile_world
    client = Client()
    client.force_login(world.superuser)
    urls = admin_urls(world)  # every signup's pages too: world.objects holds them all
    assert sum("/sites/signup/" in url.path for url in urls) > 3 * len(PAYLOADS)
    pages = 0
    for url in urls:
        response = client.get(url.path)
        if response.get("Content-Type", "").startswith("text/html"):
            assert_inert(response.content.decode(), f"GET {url}")
            pages += 1
    # The values really are on the pages (escaped), so the scan above saw them.
    listing = client.get(reverse("admin:sites_signup_changelist")).content.decode()
    assert "&lt;script&gt;alert(&quot;xss-1&quot;)&lt;/script&gt;" in listing
    events = client.get(reverse("admin:audit_auditevent_changelist")).content.decode()
    assert "&lt;img src=x onerror=alert(&quot;xss-2&quot;)&gt;" in events
    print(f"hostile values: {len(urls)} admin URLs and {pages} pages scanned")


def test_every_confirmation_and_flow_page_shows_hostile_values_as_text(hostile_world):
    world = hostile_world
    client = Client()
    client.force_login(world.superuser)
    seen_confirmations = 0
    for action in admin_actions(world.superuser):
        if action.name == "export_csv":
            continue
        pks = [str(obj.pk) for obj in world.of(action.model)]
        response = client.post(
            action.changelist, {"action": action.name, "_selected_action": pks, "index": "0"}
        )
        if response.status_code == 302:  # a flow: follow it to its form page
            response = client.get(response["Location"])
        assert response.status_code == 200, f"{action}: {response.status_code}"
        assert_inert(response.content.decode(), f"confirmation of {action}")
        seen_confirmations += "confirm" in response.content.decode().lower()

    # The upgrade and rollback flows, to the preview and a refused whole-fleet confirmation.
    session = client.session
    session[SESSION_KEY] = {"mode": "all", "ids": []}
    session.save()
    upgrade = reverse("admin:rollouts_rollout_upgrade")
    for image in (PAYLOADS[0], "subscribie/subscribie:v3"):
        form = {"image": image, "waves": "1,100%", "max_failures": "1", "wave_timeout": "60"}
        for stage in ("form", "preview", "confirm"):
            response = client.post(upgrade, {**form, "stage": stage, "confirm_image": PAYLOADS[1]})
            assert response.status_code == 200, (image, stage, response.status_code)
            assert_inert(response.content.decode(), f"upgrade {stage} of {image!r}")
    assert not Rollout.objects.filter(image=PAYLOADS[0]).exists()
    session = client.session
    session[SESSION_KEY] = {"mode": "selected", "ids": [s.pk for s in world.sites]}
    session.save()
    rollback = reverse("admin:rollouts_rollout_rollback_sites")
    for stage in ("form", "preview"):
        response = client.post(
            rollback, {"waves": PAYLOADS[2], "max_failures": PAYLOADS[3], "stage": stage,
                       "wave_timeout": "60"},
        )  # fmt: skip
        assert_inert(response.content.decode(), f"rollback {stage}")
    for rollout in (world.rollout_running, world.rollout_done):
        for path in (
            reverse("admin:rollouts_rollout_rollback", args=[rollout.pk]),
            reverse("admin:rollouts_rollout_control", args=[rollout.pk, "cancel-revert"]),
            reverse("admin:rollouts_rollout_change", args=[rollout.pk]),
        ):
            response = client.get(path, follow=True)
            assert_inert(response.content.decode(), f"GET {path}")
    assert seen_confirmations >= 5


def test_the_csv_export_holds_hostile_values_as_inert_text(hostile_world):
    client = Client()
    client.force_login(hostile_world.superuser)
    response = client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "export_csv", "select_across": "1", "index": "0",
         "_selected_action": [str(pk) for pk in AuditEvent.objects.values_list("pk", flat=True)]},
    )  # fmt: skip
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    header, body = rows[0], rows[1:]
    assert len(body) == AuditEvent.objects.count()
    cells = [cell for row in body for cell in row]
    formulas = [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
    assert not formulas, f"cells a spreadsheet would run: {formulas[:5]}"
    for payload in PAYLOADS:  # every value is there, as text
        assert any(payload.lstrip("\t") in cell for cell in cells), payload
    message = header.index("message")
    assert any(row[message] == "'" + PAYLOADS[8] for row in body)


def test_the_scan_catches_each_payload_left_unescaped():
    """The check above can fail: each payload, pasted raw into a page, is caught."""
    markup = [payload for payload in PAYLOADS if "<" in payload]
    assert len(markup) == 7
    for payload in markup:
        with pytest.raises(AssertionError):
            assert_inert(f"<html><body><p>{payload}</p></body></html>", payload)
    for url in ('javascript:alert("xss-4")', " JaVa\tScRiPt:alert(1)"):  # only as a link target
        assert_inert(f"<p>{url}</p>", "a javascript: URL as text")
        with pytest.raises(AssertionError):
            assert_inert(f'<a href="{url}">x</a>', url)
    assert_inert("<p>&lt;script&gt;alert(&quot;xss-1&quot;)&lt;/script&gt;</p>", "escaped")
