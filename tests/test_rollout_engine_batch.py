"""The engine's grouped compare-and-swap: one UPDATE for many targets, exact per-target result.

``_Tick._set_targets`` CAS'es a group of targets with one UPDATE; if any row no longer matches
its guard, the grouped UPDATE is rolled back and each target is CAS'd on its own, so exactly
the targets that changed are reported (and audited by the caller) and the others are left as
they are.
"""

from __future__ import annotations

import pytest

from rollouts import engine, services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Site

V2 = "subscribie/subscribie:v2"
Status = RolloutTarget.Status

pytestmark = pytest.mark.timeout(120)


def _rollout(live_sites) -> Rollout:
    live_sites(5)
    rollout = services.rollout_create(
        sites=Site.objects.all(), image=V2, actor="tester", waves="100%", wave_timeout=60
    )
    services.rollout_start(rollout=rollout, actor="tester", enqueue=False)
    return Rollout.objects.get(pk=rollout.pk)


def test_grouped_cas_changes_every_matching_target(live_sites, cluster):
    rollout = _rollout(live_sites)
    targets = list(rollout.targets.order_by("position"))
    tick = engine._Tick(rollout, cluster)

    changed = tick._set_targets(targets, Status.PENDING, status=Status.PATCHING, claim="t")

    assert [t.pk for t in changed] == [t.pk for t in targets]
    assert all(t.status == Status.PATCHING for t in targets)
    assert set(rollout.targets.values_list("status", "claim")) == {(Status.PATCHING, "t")}


def test_grouped_cas_reports_only_targets_that_still_matched(live_sites, cluster):
    rollout = _rollout(live_sites)
    targets = list(rollout.targets.order_by("position"))
    # Someone else moved one target after we read it: its CAS must fail, the others succeed.
    RolloutTarget.objects.filter(pk=targets[2].pk).update(status=Status.SKIPPED)
    tick = engine._Tick(rollout, cluster)

    changed = tick._set_targets(
        targets, Status.PENDING, where={"generation__isnull": True}, status=Status.PATCHING
    )

    assert [t.pk for t in changed] == [t.pk for i, t in enumerate(targets) if i != 2]
    assert targets[2].status == Status.PENDING  # the stale instance was not updated
    statuses = dict(rollout.targets.values_list("pk", "status"))
    assert statuses[targets[2].pk] == Status.SKIPPED
    assert [statuses[t.pk] for t in changed] == [Status.PATCHING] * 4
