"""The gateway's client-side limit listens to the server: kubesim answers 429 as API Priority
and Fairness does (Retry-After, flow schema and priority level headers)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cluster.gateway import Cluster
from tests.fixtures.sites import FAST_RETRY

V2 = "subscribie/subscribie:v2"
pytestmark = pytest.mark.timeout(120)


def limited(cluster: Cluster, kubesim, *, qps: float, burst: int) -> Cluster:
    return Cluster.connect(
        namespace=cluster.namespace,
        kubeconfig=str(kubesim.kubeconfig_path),
        qps=qps,
        burst=burst,
        retry=FAST_RETRY,
    )


def patch_all(cluster: Cluster, slugs: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda s: cluster.set_image(s, V2, change_cause="test"), slugs))


def test_429s_pause_every_caller_and_slow_the_limit(live_sites, cluster, kubesim, kube_namespace):
    slugs = [s.slug for s in live_sites(20)]
    throttled = limited(cluster, kubesim, qps=40, burst=4)
    kubesim.faults.add("patch", "deployments", status=429, count=4, retry_after=1)
    kubesim.reset_requests()

    started = time.monotonic()
    patch_all(throttled, slugs)
    elapsed = time.monotonic() - started

    assert elapsed >= 1.0  # Retry-After: 1 held every caller, not just the four answered 429
    assert throttled.limiter.throttle_count >= 1
    assert throttled.limiter.qps < 40  # slowed down, climbing back
    # Each of the four was retried once after the pause; no caller spent retries in it.
    assert kubesim.requests().count("patch", "deployments", namespace=kube_namespace) == 24
    assert {s.image for s in cluster.list_sites(slugs).values()} == {V2}


def test_the_rate_climbs_back_to_the_configured_limit(live_sites, cluster, kubesim):
    slugs = [s.slug for s in live_sites(3)]
    throttled = limited(cluster, kubesim, qps=20, burst=2)
    kubesim.faults.add("patch", "deployments", status=429, count=1, retry_after=0)
    patch_all(throttled, slugs[:1])
    assert throttled.limiter.qps < 20
    time.sleep(1.0)  # recovery: ceiling / 10 per second, from 10/s
    throttled.read_site(slugs[0])
    assert throttled.limiter.qps >= 11.5


def test_unlimited_still_waits_out_retry_after_per_call(live_sites, cluster, kubesim):
    (site,) = live_sites(1)
    kubesim.faults.add("patch", "deployments", site.slug, status=429, count=1, retry_after=1)
    started = time.monotonic()
    cluster.set_image(site.slug, V2, change_cause="test")  # the fixture's cluster: KUBE_QPS=0
    assert time.monotonic() - started >= 1.0
    assert cluster.read_site(site.slug).image == V2
