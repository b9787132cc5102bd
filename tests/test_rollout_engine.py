"""The rollout engine on kubesim: the real gateway over HTTP, no mocks.

Each test builds a small live fleet, runs the engine in-process (``run_until_settled``, what
``--sync`` does) and checks the cluster (images, availability ledger, request log), the
database (target states, Site.image) and the audit history.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from audit.models import AuditEvent
from rollouts import engine, selectors, services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Site
from tests.fixtures.rollouts import start_approved
from tests.fixtures.sites import wait_until

V1 = "subscribie/subscribie:v1"
V2 = "subscribie/subscribie:v2"
KUBECTL = str(Path(sys.executable).with_name("kubectl"))

pytestmark = pytest.mark.timeout(120)


def start_upgrade(sites, image=V2, **kwargs) -> Rollout:
    kwargs.setdefault("waves", "1,10%,50%,100%")
    kwargs.setdefault("wave_timeout", 60)
    rollout = services.rollout_create(sites=sites, image=image, actor="tester", **kwargs)
    start_approved(rollout)  # a whole-fleet upgrade needs a second staff member's approval
    return rollout


def run(rollout: Rollout, cluster) -> Rollout:
    return engine.run_until_settled(rollout.pk, cluster=cluster, poll=0.05).rollout


def patches(kubesim, namespace: str) -> dict[str, int]:
    """``{deployment name: image PATCH requests}`` in ``namespace``."""
    per_object = kubesim.requests().per_object("patch", "deployments", namespace)
    return {key.split("/", 1)[1]: n for key, n in per_object.items()}


def actions(rollout: Rollout) -> Counter:
    return Counter(AuditEvent.objects.filter(rollout=rollout).values_list("action", flat=True))


def target_statuses(rollout: Rollout) -> Counter:
    return Counter(rollout.targets.values_list("status", flat=True))


def test_200_sites_upgrade_in_waves_one_patch_each_and_always_available(
    live_sites, cluster, kubesim, kube_namespace
):
    live_sites(200, canary=2)
    kubesim.reset_availability([kube_namespace])
    kubesim.reset_requests()

    rollout = start_upgrade(Site.objects.all(), whole_fleet=True)
    assert selectors.fleet_image() != V2  # never an image mid-test
    rollout = run(rollout, cluster)

    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message
    assert target_statuses(rollout) == {"succeeded": 200}
    # Canary sites form the first wave; waves follow 1,10%,50%,100% of 200.
    assert list(rollout.targets.filter(wave=0).values_list("site__slug", flat=True)) == [
        "site-0000"
    ]
    assert Counter(rollout.targets.values_list("wave", flat=True)) == {0: 1, 1: 19, 2: 80, 3: 100}
    images = {slug: snap.image for slug, snap in cluster.list_sites().items()}
    assert set(images.values()) == {V2} and len(images) == 200
    availability = kubesim.availability(kube_namespace)
    assert len(availability) == 200 and min(availability.values()) >= 1
    assert patches(kubesim, kube_namespace) == {f"site-{i:04d}": 1 for i in range(200)}
    # Status reads are per wave (and per poll), never per site.
    requests = kubesim.requests()
    assert requests.count("get", "deployments") == 0
    assert requests.count("list", "deployments") < 60
    assert set(Site.objects.values_list("image", flat=True)) == {V2}
    counts = actions(rollout)
    assert counts["target.patched"] == 200 and counts["target.succeeded"] == 200
    assert counts["rollout.create"] == counts["rollout.start"] == counts["rollout.succeed"] == 1
    assert counts["rollout.wave"] == 3
    event = AuditEvent.objects.get(action="target.succeeded", site__slug="site-0007")
    assert event.data["from_image"] == V1 and event.data["to_image"] == V2
    assert event.data["from_revision"] == 1 and event.data["revision"] == 2
    assert selectors.fleet_image() == V2


def test_broken_image_halts_in_canary_wave_and_reverts_it(
    settings, live_sites, cluster, kubesim, kube_namespace
):
    settings.SITE_PROGRESS_DEADLINE_SECONDS = 1
    live_sites(12, canary=1)
    kubesim.reset_availability([kube_namespace])
    kubesim.reset_requests()
    kubesim.set_fail_images(r":v2-broken$")

    rollout = start_upgrade(Site.objects.all(), image="subscribie/subscribie:v2-broken")
    rollout = run(rollout, cluster)

    assert rollout.status == Rollout.Status.REVERTED, rollout.status_message
    assert "failure budget exceeded" in rollout.status_message
    canary = rollout.targets.get(wave=0)
    assert canary.status == RolloutTarget.Status.REVERTED
    assert canary.from_image == V1 and canary.site.slug == "site-0000"
    assert target_statuses(rollout) == {"reverted": 1, "skipped": 11}
    # Nothing outside the canary wave was touched; the canary got one patch and one revert.
    assert patches(kubesim, kube_namespace) == {"site-0000": 2}
    snaps = cluster.list_sites()
    assert {snap.image for snap in snaps.values()} == {V1}
    wait_until(lambda: cluster.read_site("site-0000").state.done, timeout=10)
    assert cluster.read_site("site-0000").available_replicas >= 1
    assert min(kubesim.availability(kube_namespace).values()) >= 1
    assert Site.objects.get(slug="site-0000").image == V1
    counts = actions(rollout)
    assert counts["target.failed"] == 1 and counts["target.reverted"] == 1
    assert counts["rollout.halt"] == counts["rollout.revert"] == counts["rollout.reverted"] == 1
    failed = AuditEvent.objects.get(rollout=rollout, action="target.failed")
    assert "progress deadline" in failed.message
    assert selectors.fleet_image() == settings.SITE_IMAGE


@pytest.mark.parametrize(("budget", "expected"), [("5", "succeeded"), ("2", "reverted")])
def test_failure_budget_503_storm(budget, expected, live_sites, cluster, kubesim, kube_namespace):
    live_sites(50)
    broken = ["site-0010", "site-0020", "site-0030"]
    for slug in broken:  # a 503 storm longer than the wave deadline
        kubesim.faults.add("patch", "deployments", slug, status=503)
    kubesim.reset_requests()

    rollout = run(start_upgrade(Site.objects.all(), max_failures=budget, wave_timeout=3), cluster)

    assert rollout.status == expected, rollout.status_message
    failed = rollout.targets.filter(status=RolloutTarget.Status.FAILED)
    assert sorted(failed.values_list("site__slug", flat=True)) == broken
    assert all("retries exhausted" in t.last_error for t in failed)
    images = {slug: snap.image for slug, snap in cluster.list_sites().items()}
    if expected == "succeeded":
        assert target_statuses(rollout) == {"succeeded": 47, "failed": 3}
        assert [slug for slug, image in images.items() if image != V2] == broken
    else:
        assert "3 of 50 targets failed (allowed 2)" in rollout.status_message
        assert target_statuses(rollout) == {"reverted": 47, "failed": 3}
        assert set(images.values()) == {V1}
        assert set(Site.objects.values_list("image", flat=True)) == {V1}
        assert actions(rollout)["target.reverted"] == 47


def test_429_retry_after_honoured_and_500_after_apply_not_patched_twice(
    live_sites, cluster, kubesim, kube_namespace
):
    live_sites(4)
    kubesim.faults.add("patch", "deployments", "site-0001", status=429, count=1, retry_after=1)
    kubesim.faults.add("patch", "deployments", "site-0002", after_write=True, count=1)
    kubesim.reset_requests()

    started = time.monotonic()
    rollout = run(start_upgrade(Site.objects.all(), waves="100%"), cluster)

    assert rollout.status == Rollout.Status.SUCCEEDED
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was waited for
    per_site = patches(kubesim, kube_namespace)
    # 429 then success; 500-after-apply is detected by a read, never patched a second time.
    assert per_site == {"site-0000": 1, "site-0001": 2, "site-0002": 1, "site-0003": 1}
    assert {snap.image for snap in cluster.list_sites().values()} == {V2}


def test_drift_rollback_restores_exact_images_and_twice_is_noop(
    live_sites, cluster, kubesim, kube_namespace
):
    live_sites(3)
    hand = "subscribie/subscribie:hotfix"
    subprocess.run(
        [KUBECTL, "--kubeconfig", kubesim.kubeconfig_path, "-n", kube_namespace, "set", "image",
         "deployment/site-0001", f"subscribie={hand}"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    wait_until(lambda: cluster.read_site("site-0001").state.done, timeout=10)

    upgrade = run(start_upgrade(Site.objects.all(), waves="100%"), cluster)
    assert upgrade.status == Rollout.Status.SUCCEEDED
    drifted = upgrade.targets.get(site__slug="site-0001")
    assert (drifted.from_image, drifted.from_revision) == (hand, 2)  # what the cluster ran

    kubesim.reset_requests()
    rollback = services.rollout_rollback(rollout=upgrade, actor="tester", enqueue=False)
    assert rollback.kind == Rollout.Kind.ROLLBACK and rollback.parent_id == upgrade.pk
    assert rollback.waves == upgrade.waves and rollback.max_failures == upgrade.max_failures
    rollback = run(rollback, cluster)
    assert rollback.status == Rollout.Status.SUCCEEDED
    images = {slug: snap.image for slug, snap in cluster.list_sites().items()}
    assert images == {"site-0000": V1, "site-0001": hand, "site-0002": V1}
    assert patches(kubesim, kube_namespace) == {f"site-000{i}": 1 for i in range(3)}

    kubesim.reset_requests()
    again = services.rollout_rollback(rollout=upgrade, actor="tester", enqueue=False)
    assert again.status == Rollout.Status.SUCCEEDED and again.targets.count() == 0
    assert {item["reason"] for item in again.left_out} == {f"already on {V1}", f"already on {hand}"}
    by_sites = services.sites_rollback(sites=Site.objects.all(), actor="tester", enqueue=False)
    assert by_sites.status == Rollout.Status.SUCCEEDED and by_sites.targets.count() == 0
    assert patches(kubesim, kube_namespace) == {}
    assert {slug: snap.image for slug, snap in cluster.list_sites().items()} == images


def test_sites_rollback_goes_to_image_before_last_upgrade(live_sites, cluster):
    live_sites(2)
    run(start_upgrade(Site.objects.all(), waves="100%"), cluster)
    run(start_upgrade(Site.objects.all(), image="subscribie/subscribie:v3", waves="100%"), cluster)

    rollback = services.sites_rollback(
        sites=Site.objects.filter(slug="site-0000"), actor="tester", waves="100%", enqueue=False
    )
    assert run(rollback, cluster).status == Rollout.Status.SUCCEEDED
    images = {slug: snap.image for slug, snap in cluster.list_sites().items()}
    assert images == {"site-0000": V2, "site-0001": "subscribie/subscribie:v3"}


def test_crash_resume_checks_patching_targets_instead_of_repatching(
    live_sites, cluster, kubesim, kube_namespace
):
    live_sites(3)
    rollout = start_upgrade(Site.objects.all(), waves="100%")
    first, second, _third = rollout.targets.order_by("position")
    # A tick claimed two targets, stored from_image, patched the first, then died.
    for target in (first, second):
        RolloutTarget.objects.filter(pk=target.pk).update(
            status=RolloutTarget.Status.PATCHING, from_image=V1, from_revision=1, claim="dead"
        )
    cluster.set_image("site-0000", V2, change_cause="tick that crashed")
    Rollout.objects.filter(pk=rollout.pk).update(lease_owner="dead", lease_until=None)
    kubesim.reset_requests()

    rollout = run(rollout, cluster)

    assert rollout.status == Rollout.Status.SUCCEEDED
    assert patches(kubesim, kube_namespace) == {"site-0001": 1, "site-0002": 1}
    first.refresh_from_db()
    assert (first.from_image, first.status) == (V1, RolloutTarget.Status.SUCCEEDED)
    assert {snap.image for snap in cluster.list_sites().values()} == {V2}


def test_pause_patches_nothing_more_and_cancel_with_revert_restores(
    live_sites, cluster, kubesim, kube_namespace
):
    live_sites(6)
    rollout = start_upgrade(Site.objects.all(), waves="1,100%")
    engine.tick(rollout.pk, cluster=cluster)  # patches the first wave
    services.rollout_pause(rollout=rollout, actor="tester")
    kubesim.reset_requests()
    for _ in range(3):
        result = engine.tick(rollout.pk, cluster=cluster)
        time.sleep(0.1)
    assert result.status == Rollout.Status.PAUSED
    assert patches(kubesim, kube_namespace) == {}
    assert rollout.targets.filter(status=RolloutTarget.Status.PENDING).count() == 5

    services.rollout_resume(rollout=rollout, actor="tester", enqueue=False)
    wait_until(
        lambda: (
            engine.tick(rollout.pk, cluster=cluster)
            and rollout.targets.filter(wave=1, status=RolloutTarget.Status.WAITING).exists()
        ),
        timeout=20,
    )
    services.rollout_cancel(rollout=rollout, actor="tester", revert=True, enqueue=False)
    rollout = run(rollout, cluster)

    assert rollout.status == Rollout.Status.REVERTED
    assert set(rollout.targets.values_list("status", flat=True)) == {"reverted"}
    assert {snap.image for snap in cluster.list_sites().values()} == {V1}
    assert actions(rollout)["rollout.cancel"] == 1
