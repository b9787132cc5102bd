"""Defects the chaos run (bench/chaos; seed 1 at 30 sites, later seeds at 300) found in the
engine, each pinned down on its own: a throttled API server is not a failed site, a long tick
keeps its lease, a killed tick's patches are recorded whatever staff did next.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from rollouts import engine, services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Site

V2 = "subscribie/subscribie:v2"
pytestmark = pytest.mark.timeout(120)


def start(sites, **kwargs) -> Rollout:
    rollout = services.rollout_create(sites=sites, image=V2, actor="tester", **kwargs)
    return services.rollout_start(rollout=rollout, actor="tester", enqueue=False)


def test_patch_storm_longer_than_the_retries_is_patched_again_next_tick(
    live_sites, cluster, kubesim, kube_namespace
):
    live_sites(3)
    # More 503s than the gateway's attempts in one tick, fewer than a wave deadline allows.
    kubesim.faults.add("patch", "deployments", "site-0001", status=503, count=6)
    kubesim.request_log.start_journal()

    rollout = start(Site.objects.all(), waves="100%", max_failures="0", wave_timeout=60)
    rollout = engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.05).rollout

    # Before: site-0001 failed with "retries exhausted" and the budget of 0 halted and
    # reverted the whole rollout although every site was healthy.
    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message
    target = rollout.targets.get(site__slug="site-0001")
    assert target.status == RolloutTarget.Status.SUCCEEDED and target.attempts >= 2
    retries = AuditEvent.objects.filter(rollout=rollout, action="target.retry")
    assert retries.exists() and {e.site.slug for e in retries} == {"site-0001"}
    assert "retries exhausted" in retries.first().message
    applied = [w.name for w in kubesim.request_log.journal() if w.verb == "patch" and w.applied]
    assert sorted(applied) == ["site-0000", "site-0001", "site-0002"]  # each patched once
    assert {s.image for s in cluster.list_sites().values()} == {V2}


def test_patch_storm_past_the_wave_deadline_still_fails_the_site(live_sites, cluster, kubesim):
    live_sites(2)
    kubesim.faults.add("patch", "deployments", "site-0001", status=503)
    rollout = start(Site.objects.all(), waves="100%", max_failures="1", wave_timeout=2)
    rollout = engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.05).rollout
    target = rollout.targets.get(site__slug="site-0001")
    assert target.status == RolloutTarget.Status.FAILED
    assert "retries exhausted" in target.last_error


@pytest.mark.django_db(transaction=True)
def test_a_tick_longer_than_its_lease_keeps_the_lease(live_sites, cluster, kubesim, settings):
    settings.ROLLOUT_LEASE_SECONDS = 1
    live_sites(1)
    kubesim.faults.add("patch", "deployments", latency=2.5, count=1)  # one slow PATCH
    rollout = start(Site.objects.all(), waves="100%")
    ticking = threading.Thread(
        target=engine.tick, args=(rollout.pk,), kwargs={"cluster": cluster, "lease_owner": "a"}
    )
    ticking.start()
    try:
        time.sleep(1.8)  # past the lease the tick took when it began
        # Before: the lease had lapsed, so a second job (the schedule) could tick beside it.
        assert ticking.is_alive()
        assert not engine.acquire_lease(rollout.pk, "b")
    finally:
        ticking.join(timeout=30)
    assert Rollout.objects.get(pk=rollout.pk).lease_owner == "a"


def test_cancel_while_sites_are_in_flight_leaves_the_database_on_their_image(
    live_sites, cluster, kubesim
):
    live_sites(3)
    kubesim.set_ready_after(1.5)  # the patched pods are still starting when staff cancel
    rollout = start(Site.objects.all(), waves="100%")
    engine.tick(rollout.pk, cluster=cluster)
    assert set(rollout.targets.values_list("status", flat=True)) == {"waiting"}
    services.rollout_cancel(rollout=rollout, actor="tester")  # no revert: sites stay as they are

    # Before: Site.image was written only when a target settled, and a cancelled rollout
    # settles nothing, so the database kept saying v1 about sites running v2.
    cluster_images = {slug: snap.image for slug, snap in cluster.list_sites().items()}
    assert cluster_images == dict.fromkeys(cluster_images, V2)
    assert dict(Site.objects.values_list("slug", "image")) == cluster_images


@pytest.mark.django_db(transaction=True)
def test_cancel_mid_wave_stops_patching_within_one_chunk(live_sites, cluster, kubesim, settings):
    settings.KUBE_CONCURRENCY = 1  # chunks of 4 patches
    live_sites(30)
    kubesim.faults.add("patch", "deployments", latency=0.1)  # every PATCH takes 0.1 s
    kubesim.request_log.start_journal()
    rollout = start(Site.objects.all(), waves="100%")
    ticking = threading.Thread(target=engine.tick, args=(rollout.pk,), kwargs={"cluster": cluster})
    ticking.start()
    time.sleep(0.9)
    services.rollout_cancel(rollout=rollout, actor="tester")
    applied_at_cancel = sum(w.applied for w in kubesim.request_log.journal())
    ticking.join(timeout=60)

    # Before: the tick went on through its whole claimed batch (all 30 sites) after the cancel.
    applied = sum(w.applied for w in kubesim.request_log.journal())
    assert 0 < applied <= applied_at_cancel + 4 < 30
    statuses = Counter(rollout.targets.values_list("status", flat=True))
    assert statuses["skipped"] == 30 - applied and not statuses["patching"]
    assert statuses["waiting"] + statuses["succeeded"] == applied
    stopped = rollout.targets.filter(last_error="rollout stopped before this site was patched")
    assert stopped.exists()  # the claimed but unpatched ones, besides the pending ones


def killed_mid_patch(live_sites, cluster) -> tuple[Rollout, RolloutTarget, RolloutTarget]:
    """Two sites' targets claimed by a tick that died after patching only the first."""
    live_sites(2)
    rollout = start(Site.objects.all(), waves="100%")
    first, second = rollout.targets.order_by("position")
    for target in (first, second):
        RolloutTarget.objects.filter(pk=target.pk).update(
            status=RolloutTarget.Status.PATCHING,
            from_image=target.site.image,
            from_revision=1,
            claim="dead",
        )
    cluster.set_image(first.site.slug, V2, change_cause="the tick that died")
    return rollout, first, second


def test_a_crashed_ticks_patch_is_audited_when_a_revert_settles_it(live_sites, cluster, kubesim):
    """Chaos seed 10 at 300 sites: a worker killed mid-patch, then cancel-and-revert. The
    revert found the patched sites in ``patching`` and reverted them, but their trail held
    only ``target.reverted``: the patch itself was never audited, nor the site's image."""
    rollout, first, second = killed_mid_patch(live_sites, cluster)
    Rollout.objects.filter(pk=rollout.pk).update(lease_owner="", lease_until=None)
    services.rollout_cancel(rollout=rollout, actor="tester", revert=True, enqueue=False)

    rollout = engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.05).rollout

    assert rollout.status == Rollout.Status.REVERTED
    trail = list(
        AuditEvent.objects.filter(rollout=rollout, site=first.site)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert trail == ["target.patched", "target.reverted"]
    assert not AuditEvent.objects.filter(rollout=rollout, site=second.site).exists()
    assert {s.image for s in cluster.list_sites().values()} == {
        Site.objects.get(pk=second.site_id).image
    }


def test_a_crashed_ticks_patch_is_settled_after_a_plain_cancel(live_sites, cluster, kubesim):
    """Chaos seeds 16 and 21 at 300 sites: a worker killed mid-patch, then cancel without
    revert. The rollout was cancelled with the killed tick's targets still ``patching``: the
    sites it had patched ran the new image while the database and the audit said the old one,
    and nothing ever looked at them again. The schedule now finds such a rollout once its
    lease lapses, and the engine settles the targets from what the cluster runs."""
    rollout, first, second = killed_mid_patch(live_sites, cluster)
    old_image = second.site.image
    services.rollout_cancel(rollout=rollout, actor="tester", enqueue=False)
    # The dead tick's lease still stands: nothing may settle its targets yet.
    Rollout.objects.filter(pk=rollout.pk).update(
        lease_owner="dead", lease_until=timezone.now() + timedelta(minutes=5)
    )
    assert rollout.pk not in services.rollouts_needing_tick()
    assert engine.tick(rollout.pk, cluster=cluster).busy
    Rollout.objects.filter(pk=rollout.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert services.rollouts_needing_tick() == [rollout.pk]

    result = engine.tick(rollout.pk, cluster=cluster)

    assert result.finished and result.status == Rollout.Status.CANCELLED
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (
        RolloutTarget.Status.WAITING,
        RolloutTarget.Status.SKIPPED,
    )
    assert Site.objects.get(pk=first.site_id).image == V2
    assert Site.objects.get(pk=second.site_id).image == old_image
    trail = AuditEvent.objects.filter(rollout=rollout, site=first.site)
    assert list(trail.values_list("action", flat=True)) == ["target.patched"]
    assert services.rollouts_needing_tick() == []  # settled: the schedule leaves it alone
