"""Bake time and maintenance windows, on kubesim through the real gateway.

The engine's clock is the test's (``engine_clock``): the tests move time and tick instead of
sleeping; kubesim's own controllers run in real time (pods become Ready in 50 ms).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from audit.models import AuditEvent
from rollouts import engine, selectors, services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Site
from tests.fixtures.sites import wait_until

V1 = "subscribie/subscribie:v1"
V2 = "subscribie/subscribie:v2"
TStatus = RolloutTarget.Status

pytestmark = pytest.mark.timeout(120)


def start(sites, **kwargs) -> Rollout:
    kwargs.setdefault("wave_timeout", 60)
    rollout = services.rollout_create(sites=sites, image=V2, actor="tester", **kwargs)
    services.rollout_start(rollout=rollout, actor="tester", enqueue=False)
    return rollout


def tick_until(rollout: Rollout, cluster, predicate, timeout: float = 30.0) -> Rollout:
    """Tick (at the test clock's current time) until ``predicate(rollout)`` holds."""

    def step():
        engine.tick(rollout.pk, cluster=cluster)
        rollout.refresh_from_db()
        return predicate(rollout)

    wait_until(step, timeout=timeout)
    return rollout


def statuses(rollout: Rollout) -> dict[str, str]:
    return dict(rollout.targets.values_list("site__slug", "status"))


def patched(kubesim, namespace: str) -> Counter:
    per_object = kubesim.requests().per_object("patch", "deployments", namespace)
    return Counter({key.split("/", 1)[1]: n for key, n in per_object.items()})


# --- bake ---------------------------------------------------------------------------------


def test_bake_catches_a_site_going_unavailable_after_it_turned_healthy_and_reverts(
    live_sites, cluster, kubesim, kube_namespace, engine_clock
):
    live_sites(4, canary=1)
    kubesim.reset_requests()
    rollout = start(Site.objects.all(), waves="1,100%", bake=300, max_failures="0")

    # The canary rolls out and turns healthy: its wave bakes instead of advancing.
    rollout = tick_until(rollout, cluster, lambda r: r.bake_started_at is not None)
    assert statuses(rollout)["site-0000"] == TStatus.SUCCEEDED
    engine_clock.advance(seconds=120)
    for _ in range(3):
        assert engine.tick(rollout.pk, cluster=cluster).waiting
    rollout.refresh_from_db()
    assert (rollout.status, rollout.current_wave) == (Rollout.Status.RUNNING, 0)
    assert selectors.wave_bake(rollout).countdown == "baking: 3m 00s left of 300s"
    assert set(patched(kubesim, kube_namespace)) == {"site-0000"}  # wave 2 untouched

    # Its pod stops being Ready: the Deployment loses its only available replica.
    assert kubesim.set_deployment_ready(kube_namespace, "site-0000", False)
    wait_until(lambda: cluster.list_sites(["site-0000"])["site-0000"].available_replicas == 0)
    rollout = tick_until(rollout, cluster, lambda r: r.status != Rollout.Status.RUNNING)

    target = rollout.targets.get(site__slug="site-0000")
    assert target.last_error == "unavailable during the 300s bake: 0 of 1 replicas available"
    assert "halted in wave 1: failure budget exceeded, 1 of 4" in rollout.status_message
    failed = AuditEvent.objects.get(rollout=rollout, action="target.failed")
    assert failed.data["during_bake"] is True and failed.subject == "site-0000"
    # Auto-revert puts the canary back on its old image; nobody else was ever patched.
    rollout = engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.05).rollout
    assert rollout.status == Rollout.Status.REVERTED
    assert cluster.list_sites(["site-0000"])["site-0000"].image == V1
    assert statuses(rollout) == {
        "site-0000": TStatus.REVERTED,
        **{f"site-000{i}": TStatus.SKIPPED for i in (1, 2, 3)},
    }
    assert set(patched(kubesim, kube_namespace)) == {"site-0000"}


def test_next_wave_waits_for_the_bake_and_every_wave_bakes(
    live_sites, cluster, kubesim, kube_namespace, engine_clock
):
    live_sites(3, canary=1)
    kubesim.reset_requests()
    rollout = start(Site.objects.all(), waves="1,100%", bake=60)

    rollout = tick_until(rollout, cluster, lambda r: r.bake_started_at is not None)
    engine_clock.advance(seconds=59)
    engine.tick(rollout.pk, cluster=cluster)
    rollout.refresh_from_db()
    assert rollout.current_wave == 0 and set(patched(kubesim, kube_namespace)) == {"site-0000"}

    engine_clock.advance(seconds=1)
    rollout = tick_until(rollout, cluster, lambda r: r.current_wave == 1)
    assert rollout.bake_started_at is None  # the new wave bakes afresh once healthy
    rollout = tick_until(rollout, cluster, lambda r: r.bake_started_at is not None)
    assert rollout.status == Rollout.Status.RUNNING  # the last wave bakes too
    engine_clock.advance(seconds=60)
    rollout = tick_until(rollout, cluster, lambda r: r.status != Rollout.Status.RUNNING)
    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message
    bakes = AuditEvent.objects.filter(rollout=rollout, action="rollout.bake")
    assert sorted(e.data["wave"] for e in bakes) == [1, 2]
    wave_event = AuditEvent.objects.get(rollout=rollout, action="rollout.wave")
    assert wave_event.data["baked_seconds"] == 60


# --- maintenance windows --------------------------------------------------------------------


def window_opening_at(instant, zone: str, minutes: int = 60) -> str:
    """A weekly window in ``zone`` that opens at ``instant`` (whole minutes) for ``minutes``."""
    local = instant.astimezone(ZoneInfo(zone))
    end = local + timedelta(minutes=minutes)
    return f"{local:%a} {local:%H:%M}-{end:%H:%M} {zone}"


def test_window_holds_sites_until_it_opens_and_the_deadline_counts_from_the_opening(
    live_sites, cluster, kubesim, kube_namespace, engine_clock
):
    live_sites(3)
    now = engine_clock.set(engine_clock.now.replace(second=0, microsecond=0))
    soon, tomorrow = now + timedelta(hours=2), now + timedelta(hours=26)
    Site.objects.filter(slug="site-0001").update(
        maintenance_window=window_opening_at(soon, "Europe/London")
    )
    Site.objects.filter(slug="site-0002").update(
        maintenance_window=window_opening_at(tomorrow, "Australia/Sydney")
    )
    kubesim.reset_requests()
    rollout = start(Site.objects.all(), waves="100%", respect_windows=True, wave_timeout=60)

    # The site without a window is patched at once; the others wait for theirs.
    rollout = tick_until(rollout, cluster, lambda r: statuses(r)["site-0000"] == "succeeded")
    assert statuses(rollout) == {
        "site-0000": TStatus.SUCCEEDED,
        "site-0001": TStatus.WAITING_WINDOW,
        "site-0002": TStatus.WAITING_WINDOW,
    }
    opens = dict(rollout.targets.values_list("site__slug", "window_opens_at"))
    assert (opens["site-0001"], opens["site-0002"]) == (soon, tomorrow)
    held = AuditEvent.objects.filter(rollout=rollout, action="target.waiting_window")
    assert sorted(held.values_list("subject", flat=True)) == ["site-0001", "site-0002"]
    engine_clock.advance(minutes=119)
    for _ in range(3):
        engine.tick(rollout.pk, cluster=cluster)
    assert set(patched(kubesim, kube_namespace)) == {"site-0000"}
    assert statuses(rollout)["site-0001"] == TStatus.WAITING_WINDOW

    # Into site-0001's window: it is patched, and the wave deadline restarts at the opening.
    engine_clock.set(soon + timedelta(seconds=20))
    rollout = tick_until(rollout, cluster, lambda r: statuses(r)["site-0001"] == "succeeded")
    assert rollout.wave_started_at == soon
    assert statuses(rollout)["site-0002"] == TStatus.WAITING_WINDOW
    assert set(patched(kubesim, kube_namespace)) == {"site-0000", "site-0001"}

    # The next day, an hour past the wave deadline counted from the first opening: the last
    # site is patched when its window opens and has its own full deadline from then.
    engine_clock.set(tomorrow + timedelta(seconds=30))
    rollout = tick_until(rollout, cluster, lambda r: r.status != Rollout.Status.RUNNING)
    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message
    assert rollout.wave_started_at == tomorrow
    assert set(statuses(rollout).values()) == {TStatus.SUCCEEDED}
    assert patched(kubesim, kube_namespace) == Counter(
        {"site-0000": 1, "site-0001": 1, "site-0002": 1}
    )


def test_without_respect_windows_sites_with_windows_are_patched_at_once(
    live_sites, cluster, engine_clock
):
    live_sites(2)
    later = engine_clock.now + timedelta(hours=5)
    Site.objects.update(maintenance_window=window_opening_at(later, "UTC"))
    rollout = start(Site.objects.all(), waves="100%")
    rollout = tick_until(rollout, cluster, lambda r: r.status != Rollout.Status.RUNNING)
    assert rollout.status == Rollout.Status.SUCCEEDED


def test_halt_and_cancel_skip_sites_waiting_for_their_window(db, engine_clock):
    from tests.fixtures.rollouts import site_row

    site_row("a-site", maintenance_window="Sun 02:00-05:00 UTC")
    rollout = start(Site.objects.all(), waves="100%", respect_windows=True)
    RolloutTarget.objects.filter(rollout=rollout).update(status=TStatus.WAITING_WINDOW)
    target = rollout.targets.get()
    from rollouts.admin import cancel_outcome, skip_outcome

    assert skip_outcome(target).startswith("never patched")
    assert cancel_outcome(target, revert=False).startswith("skipped")
    services.rollout_cancel(rollout=rollout, actor="tester")
    target.refresh_from_db()
    assert (target.status, target.last_error) == (TStatus.SKIPPED, "rollout cancelled")


def test_a_rollout_waiting_for_windows_is_not_reaped_as_stalled(db, settings, engine_clock):
    from tests.fixtures.rollouts import site_row

    settings.ROLLOUT_STALE_GRACE_SECONDS = 60
    later = engine_clock.now + timedelta(days=2)
    site_row("held", maintenance_window=window_opening_at(later, "Europe/London"))
    rollout = start(Site.objects.all(), waves="100%", respect_windows=True, wave_timeout=60)
    # No cluster call happens while every site waits for its window.
    engine.tick(rollout.pk, cluster=None)
    assert statuses(rollout) == {"held": TStatus.WAITING_WINDOW}
    for _ in range(5):  # ten minutes of ticks, far past deadline + grace
        engine_clock.advance(minutes=2)
        assert engine.tick(rollout.pk, cluster=None).waiting  # its job may tick slowly
        assert services.rollout_reap_stale(now=engine_clock.now) == []
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING
