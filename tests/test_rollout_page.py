"""The rollout page and its JSON progress endpoint: waves with counts and bars, targets paged
per wave with failed ones first, the timeline, bounded queries (tests/browser/ drives it live)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import audit
from rollouts import progress, services
from rollouts.models import Rollout, RolloutTarget
from tests.fixtures.rollouts import site_row, start_approved

pytestmark = pytest.mark.django_db
V2 = "subscribie/subscribie:v2"


def started(n: int, *, waves: str = "1,100%", prefix: str = "s") -> Rollout:
    sites = [site_row(f"{prefix}{i:04d}", image="x/y:v1") for i in range(n)]
    rollout = services.rollout_create(sites=sites, image=V2, waves=waves, actor="tester")
    return start_approved(rollout)


def detail(client, rollout, query=""):
    return client.get(reverse("admin:rollouts_rollout_change", args=[rollout.pk]) + query)


def test_targets_are_paged_per_wave_with_failed_first(admin_client):
    rollout = started(120)  # wave 1: one canary; wave 2: 119 sites
    last = rollout.targets.get(site__slug="s0119")
    RolloutTarget.objects.filter(pk=last.pk).update(
        status=RolloutTarget.Status.FAILED, last_error="ImagePullBackOff: no such tag"
    )
    page = detail(admin_client, rollout).content.decode()
    wave2 = page[page.index('id="wave-2"') :]
    # The failed site, last in rollout order, leads its wave's first page with its reason.
    assert wave2.index("s0119") < wave2.index("s0001")
    assert "ImagePullBackOff: no such tag" in wave2
    assert "Sites 1&ndash;50 of 119" in wave2 and "page 1 of 3" in wave2
    assert "s0060" not in wave2
    third = detail(admin_client, rollout, "?wave2=3").content.decode()
    assert "Sites 101&ndash;119 of 119" in third and "s0110" in third and "s0001" not in third
    # Out-of-range pages are clamped, not errors.
    assert "page 3 of 3" in detail(admin_client, rollout, "?wave2=99").content.decode()
    assert "page 1 of 3" in detail(admin_client, rollout, "?wave2=x").content.decode()


def test_progress_endpoint_returns_counts_and_the_live_part(admin_client):
    rollout = started(3)
    url = reverse("admin:rollouts_rollout_progress", args=[rollout.pk])
    data = admin_client.get(url).json()
    assert data["status"] == "running" and data["active"] is True
    assert data["total"] == 3 and data["settled"] == 0
    assert [w["total"] for w in data["waves"]] == [1, 2]
    assert 'id="wave-2"' in data["html"] and "Pause" in data["html"]
    services.rollout_pause(rollout=rollout, actor="tester")
    data = admin_client.get(url).json()
    assert data["status"] == "paused" and "Resume" in data["html"]


def test_progress_endpoint_needs_view_permission(client, django_user_model):
    rollout = started(1)
    nobody = django_user_model.objects.create_user("nobody", is_staff=True)
    client.force_login(nobody)
    url = reverse("admin:rollouts_rollout_progress", args=[rollout.pk])
    assert client.get(url).status_code == 403


def test_timeline_shows_rollout_events_not_routine_successes(admin_client):
    rollout = started(2)
    from django.db import transaction

    with transaction.atomic():
        audit.record(action="target.succeeded", actor="system:engine", rollout=rollout,
                     subject="s0000")  # fmt: skip
        audit.record(action="rollout.halt", actor="system:engine", rollout=rollout,
                     ok=False, message="wave 1: 1 failed, budget 0")  # fmt: skip
    timeline = progress.rollout_timeline(rollout)
    actions = [event.action for event in timeline]
    assert actions[0] == "rollout.create" and "rollout.start" in actions
    assert actions[-1] == "rollout.halt" and "target.succeeded" not in actions
    page = detail(admin_client, rollout).content.decode()
    assert "wave 1: 1 failed, budget 0" in page and "Timeline" in page


def test_page_queries_do_not_grow_with_the_rollout(admin_client):
    counts = []
    for n, prefix in ((3, "a"), (300, "b")):
        rollout = started(n, waves="1,10%,50%,100%", prefix=prefix)
        for view in ("admin:rollouts_rollout_change", "admin:rollouts_rollout_progress"):
            with CaptureQueriesContext(connection) as ctx:
                assert admin_client.get(reverse(view, args=[rollout.pk])).status_code == 200
            counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[2] and counts[1] == counts[3], counts
    assert max(counts) <= 10, counts
