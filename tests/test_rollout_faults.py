"""Status reads failing mid-wave: a short LIST outage is ridden out, a long one loses nothing."""

import pytest

from cluster.gateway import ClusterError
from rollouts import engine, services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Site

V2 = "subscribie/subscribie:v2"
pytestmark = pytest.mark.timeout(120)


def start(sites) -> Rollout:
    rollout = services.rollout_create(
        sites=sites, image=V2, waves="1,50%,100%", wave_timeout=60, actor="tester"
    )
    return services.rollout_start(rollout=rollout, actor="tester", enqueue=False)


def test_list_cut_mid_wave_is_retried_and_the_rollout_completes(live_sites, cluster, kubesim):
    live_sites(10)
    rollout = start(Site.objects.all())
    engine.tick(rollout.pk, cluster=cluster)  # the canary is patched
    kubesim.faults.add("list", "deployments", status=503, count=2)  # fewer than the retries
    kubesim.faults.cut_watches()
    rollout = engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.05).rollout
    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message
    assert {s.image for s in cluster.list_sites().values()} == {V2}


def test_long_list_outage_fails_the_tick_without_losing_state(
    live_sites, cluster, kubesim, kube_namespace
):
    live_sites(10)
    rollout = start(Site.objects.all())
    engine.tick(rollout.pk, cluster=cluster)
    kubesim.faults.add("list", "deployments", status=503)  # longer than the retry budget
    with pytest.raises(ClusterError) as outage:
        engine.tick(rollout.pk, cluster=cluster)
    assert outage.value.status == 503 and outage.value.transient
    rollout.refresh_from_db()
    # Nothing was judged on a read that did not happen: still running, nothing failed.
    assert rollout.status == Rollout.Status.RUNNING
    assert not rollout.targets.filter(status=RolloutTarget.Status.FAILED).exists()
    kubesim.faults.clear()
    kubesim.reset_requests()
    rollout = engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.05).rollout
    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message
    per_site = kubesim.requests().per_object("patch", "deployments", kube_namespace)
    assert f"{kube_namespace}/site-0000" not in per_site  # the canary was not patched again
