"""Rollout services and selectors against the database only (no cluster calls)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from audit.models import AuditEvent
from rollouts import selectors, services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Site
from subscribie_admin.schedules import ensure_schedules
from tests.fixtures.rollouts import site_row

V1 = "subscribie/subscribie:v1"
V2 = "subscribie/subscribie:v2"


def make_sites(n: int, *, image: str = V1, canary=(), **overrides) -> list[Site]:
    slugs = [f"s-{i:03d}" for i in range(n)]
    return [site_row(slug, image=image, canary=slug in canary, **overrides) for slug in slugs]


@pytest.fixture
def fleet(db):
    return make_sites(10, canary=("s-007",))


def test_plan_orders_canaries_first_and_lists_left_out_with_reasons(fleet):
    now = timezone.now()
    Site.objects.filter(slug="s-001").update(
        hold_reason="busy season", hold_until=now + timedelta(days=3)
    )
    Site.objects.filter(slug="s-002").update(
        hold_reason="expired", hold_until=now - timedelta(days=1)
    )
    Site.objects.filter(slug="s-003").update(status=Site.Status.SUSPENDED)
    Site.objects.filter(slug="s-004").update(image=V2)
    other = services.rollout_create(
        sites=Site.objects.filter(slug="s-005"), image="x/y:z", waves="100%", actor="a"
    )
    services.rollout_start(rollout=other, actor="a", enqueue=False)

    preview = services.rollout_plan(sites=Site.objects.all(), image=V2, waves="1,50%,100%")

    reasons = {item.slug: item.reason for item in preview.left_out}
    assert reasons["s-001"].startswith("on hold until ") and reasons["s-001"].endswith(
        "busy season"
    )
    assert reasons["s-003"] == "site is suspended"
    assert reasons["s-004"] == f"already on {V2}"
    assert reasons["s-005"] == f"in running rollout #{other.pk}"
    assert set(reasons) == {"s-001", "s-003", "s-004", "s-005"}
    assert preview.waves[0] == ("s-007",)
    assert [len(w) for w in preview.waves] == [1, 2, 3]
    assert "s-002" in sum(preview.waves, ())  # an expired hold does not leave a site out


def test_bad_strategy_budget_or_image_is_a_plan_error(fleet):
    with pytest.raises(services.PlanError):
        services.rollout_plan(sites=fleet, image=V2, waves="10%,5")
    with pytest.raises(services.PlanError):
        services.rollout_plan(sites=fleet, image=V2, max_failures="-1")
    with pytest.raises(services.PlanError):
        services.rollout_plan(sites=fleet, image="bad image")


def test_create_start_is_compare_and_swap_and_audited(fleet, django_capture_on_commit_callbacks):
    rollout = services.rollout_create(sites=fleet, image=V2, max_failures="10%", actor="alice")
    assert rollout.status == Rollout.Status.DRAFT and rollout.targets.count() == 10
    assert rollout.wave_count == 3 and rollout.max_failures == "10%"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.rollout_start(rollout=rollout, actor="alice")
    assert len(callbacks) == 1  # the engine job, enqueued after commit
    with pytest.raises(services.RolloutError):
        services.rollout_start(rollout=rollout, actor="alice")
    assert AuditEvent.objects.filter(action="rollout.start", rollout=rollout).count() == 1

    services.rollout_pause(rollout=rollout, actor="bob")
    with pytest.raises(services.RolloutError):
        services.rollout_pause(rollout=rollout, actor="bob")
    services.rollout_resume(rollout=rollout, actor="bob", enqueue=False)
    target = rollout.targets.order_by("position").first()
    services.rollout_skip_target(target=target, actor="bob")
    assert RolloutTarget.objects.get(pk=target.pk).status == RolloutTarget.Status.SKIPPED
    services.rollout_cancel(rollout=rollout, actor="bob")
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.CANCELLED
    assert set(rollout.targets.values_list("status", flat=True)) == {"skipped"}
    actions = list(
        AuditEvent.objects.filter(rollout=rollout).order_by("id").values_list("action", flat=True)
    )
    assert actions == [
        "rollout.create",
        "rollout.start",
        "rollout.pause",
        "rollout.resume",
        "target.skipped",
        "rollout.cancel",
    ]
    assert AuditEvent.objects.get(action="rollout.pause").actor_label == "bob"


def test_start_skips_sites_that_became_busy(fleet):
    first = services.rollout_create(sites=fleet[:3], image=V2, waves="100%", actor="a")
    second = services.rollout_create(sites=fleet[:5], image=V2, waves="100%", actor="a")
    services.rollout_start(rollout=first, actor="a", enqueue=False)
    services.rollout_start(rollout=second, actor="a", enqueue=False)
    skipped = second.targets.filter(status=RolloutTarget.Status.SKIPPED)
    assert skipped.count() == 3
    assert skipped.first().last_error == f"in running rollout #{first.pk}"


def test_fleet_image_is_last_succeeded_whole_fleet_upgrade(fleet, settings):
    settings.SITE_IMAGE = "subscribie/subscribie:seed"
    assert selectors.fleet_image() == "subscribie/subscribie:seed"
    now = timezone.now()

    def rollout(image, status, selection=Rollout.Selection.ALL, **kw):
        return Rollout.objects.create(
            image=image, status=status, selection=selection, finished_at=now, **kw
        )

    done = rollout(V2, Rollout.Status.SUCCEEDED)
    rollout("x/y:running", Rollout.Status.RUNNING)
    rollout("x/y:halted", Rollout.Status.HALTED)
    rollout("x/y:subset", Rollout.Status.SUCCEEDED, selection=Rollout.Selection.SELECTED)
    assert selectors.fleet_image() == V2
    newer = Rollout.objects.create(
        image="x/y:v3",
        status=Rollout.Status.SUCCEEDED,
        selection=Rollout.Selection.ALL,
        finished_at=now + timedelta(minutes=1),
    )
    assert selectors.fleet_image() == "x/y:v3"
    Rollout.objects.create(
        kind=Rollout.Kind.ROLLBACK, parent=newer, status=Rollout.Status.SUCCEEDED, finished_at=now
    )
    assert selectors.fleet_image() == done.image


def test_progress_counts_use_one_query(fleet, django_assert_num_queries):
    rollout = services.rollout_create(sites=fleet, image=V2, actor="a")
    RolloutTarget.objects.filter(rollout=rollout, wave=0).update(status="succeeded")
    with django_assert_num_queries(1):
        progress = selectors.rollout_progress(rollout)
    assert [w.total for w in progress.waves] == [1, 4, 5]
    assert progress.waves[0].count("succeeded") == 1 and progress.settled == 1
    with django_assert_num_queries(1):
        by_rollout = selectors.progress_by_rollout([rollout.pk])
    assert by_rollout[rollout.pk] == {"pending": 9, "succeeded": 1}


def test_reaper_halts_stalled_rollouts_only(fleet):
    stalled = services.rollout_create(sites=fleet[:2], image=V2, wave_timeout=60, actor="a")
    services.rollout_start(rollout=stalled, actor="a", enqueue=False)
    fresh = services.rollout_create(sites=fleet[2:4], image=V2, wave_timeout=60, actor="a")
    services.rollout_start(rollout=fresh, actor="a", enqueue=False)
    Rollout.objects.filter(pk=stalled.pk).update(
        last_progress_at=timezone.now() - timedelta(hours=1)
    )
    assert services.rollout_reap_stale() == [stalled.pk]
    stalled.refresh_from_db()
    assert stalled.status == Rollout.Status.HALTED
    assert stalled.status_message.startswith("stalled: no progress for ")
    assert AuditEvent.objects.filter(action="rollout.halt", rollout=stalled).exists()
    assert services.rollouts_needing_tick() == [fresh.pk]


def test_tick_schedule_exists_once(db):
    # The data migration calls ensure_schedules; a transactional test may have flushed its rows.
    ensure_schedules()
    ensure_schedules()
    assert Schedule.objects.filter(name="rollouts: tick active rollouts").count() == 1
    assert Schedule.objects.filter(func="sites.tasks.refresh_site_status").count() == 1
    schedule = Schedule.objects.get(name="rollouts: tick active rollouts")
    assert schedule.func == "rollouts.tasks.tick_active_rollouts"
    assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, 1)


def test_rollback_without_history_leaves_sites_out(fleet):
    rollback = services.sites_rollback(sites=fleet[:2], actor="a", enqueue=False)
    assert rollback.status == Rollout.Status.SUCCEEDED
    assert {item["reason"] for item in rollback.left_out} == {"no earlier image recorded"}
