"""The site watch (cluster/watch.py) and the event-driven waits built on it, on kubesim."""

from __future__ import annotations

import pytest

from cluster.gateway import ClusterError
from cluster.watch import SiteWatch
from rollouts import engine, services
from rollouts.models import Rollout
from sites.models import Site
from tests.fixtures.sites import wait_until

V2 = "subscribie/subscribie:v2"
V3 = "subscribie/subscribie:v3"
pytestmark = pytest.mark.timeout(120)


def cached_image(watch: SiteWatch, slug: str) -> str | None:
    snap = watch.snapshots([slug]).get(slug)
    return snap.image if snap else None


def test_the_cache_reads_as_a_list_and_follows_changes(live_sites, cluster):
    slugs = [s.slug for s in live_sites(5)]
    with SiteWatch(cluster).start(sync_timeout=10) as watch:
        assert watch.live
        assert watch.snapshots(slugs) == cluster.list_sites(slugs)
        patched = cluster.set_image(slugs[0], V2, change_cause="test")
        wait_until(lambda: cached_image(watch, slugs[0]) == V2, timeout=10)
        # A status from before the patch never reads as done for the generation it returned.
        assert watch.wait({slugs[0]: patched.generation}, timeout=10)
        assert watch.snapshots(slugs, expected_generations={slugs[0]: patched.generation})[
            slugs[0]
        ].state.done
        assert watch.lists == 1


def test_a_cut_watch_falls_back_to_a_list_and_misses_nothing(live_sites, cluster, kubesim):
    slugs = [s.slug for s in live_sites(3)]
    with SiteWatch(cluster).start(sync_timeout=10) as watch:
        wait_until(lambda: kubesim.store.open_watches() >= 1, timeout=10, interval=0.01)
        kubesim.faults.add("watch", "deployments", latency=1.0, count=1)  # slow to come back
        assert kubesim.faults.cut_watches() >= 1
        cluster.set_image(slugs[1], V2, change_cause="made while the watch was down")
        wait_until(lambda: cached_image(watch, slugs[1]) == V2, timeout=15)
        assert watch.lists >= 2  # re-listed after the cut


def test_410_gone_on_resume_falls_back_to_a_list(live_sites, cluster, kubesim):
    slugs = [s.slug for s in live_sites(2)]
    with SiteWatch(cluster, watch_timeout=1).start(sync_timeout=10) as watch:
        wait_until(lambda: kubesim.store.open_watches() >= 1, timeout=10, interval=0.01)
        # The watch resumed after the server ends this one (in 1 s) arrives 1 s late; by then
        # a change was made and the history compacted past the watch's resourceVersion.
        kubesim.faults.add("watch", "deployments", latency=1.0, count=1)
        wait_until(lambda: watch.watches >= 2, timeout=10, interval=0.01)
        cluster.set_image(slugs[0], V2, change_cause="test")
        kubesim.faults.compact()
        wait_until(lambda: cached_image(watch, slugs[0]) == V2, timeout=15)
        assert watch.lists == 2


def test_a_watch_from_a_compacted_resource_version_is_410(live_sites, cluster, kubesim):
    live_sites(1)
    _, rv = cluster.list_site_deployments()
    cluster.set_image("site-0000", V2, change_cause="test")
    kubesim.faults.compact()
    with pytest.raises(ClusterError) as gone:
        next(iter(cluster.watch_deployments(rv, timeout_seconds=1)))
    assert gone.value.status == 410


def test_waves_are_gated_on_events_not_a_poll_period(live_sites, cluster, kubesim):
    live_sites(30)
    rollout = services.rollout_create(
        sites=Site.objects.all(), image=V3, waves="1,50%,100%", wave_timeout=60, actor="tester"
    )
    services.rollout_start(rollout=rollout, actor="tester", enqueue=False)
    kubesim.reset_requests()
    # With a poll period of a minute, three waves would take minutes (pytest timeout: 2).
    rollout = engine.run_until_settled(rollout.pk, cluster=cluster, poll=60).rollout
    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message
    requests = kubesim.requests()
    assert requests.count("get", "deployments") == 0
    # One watch; LISTs: the watch's, and the canary's read before its patch and first status
    # read (the watch starts after the canary's tick); not one per wave or per poll.
    assert requests.count("watch", "deployments") == 1
    assert requests.count("list", "deployments") <= 3
    assert {s.image for s in cluster.list_sites().values()} == {V3}


def test_without_a_watch_the_engine_still_polls_to_the_end(live_sites, cluster):
    live_sites(4)
    rollout = services.rollout_create(
        sites=Site.objects.all(), image=V2, waves="1,100%", wave_timeout=60, actor="tester"
    )
    services.rollout_start(rollout=rollout, actor="tester", enqueue=False)
    rollout = engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.2, watch=False).rollout
    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message


def test_the_watch_lists_the_fleet_in_one_call_and_misses_no_change_meanwhile(
    live_sites, cluster, kubesim, monkeypatch
):
    import threading

    from cluster import gateway

    slugs = [s.slug for s in live_sites(6)]
    monkeypatch.setattr(gateway, "LIST_PAGE_SIZE", 2)  # other LISTs would take three pages
    # The LIST is slow to answer; site-0000 changes while it is under way.
    kubesim.faults.add("list", "deployments", latency=0.5, count=1)
    kubesim.request_log.reset()
    watch = SiteWatch(cluster)
    changer = threading.Timer(0.3, lambda: cluster.set_image(slugs[0], V2, change_cause="t"))
    changer.start()
    with watch.start(sync_timeout=10):
        changer.join()
        wait_until(lambda: cached_image(watch, slugs[0]) == V2, timeout=10)
        assert watch.lists == 1
    assert kubesim.request_log.snapshot().count("list", "deployments") == 1
