"""The rollout management commands, through call_command, against kubesim."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from rollouts.models import Rollout
from tests.fixtures.rollouts import site_row

V1 = "subscribie/subscribie:v1"
V2 = "subscribie/subscribie:v2"


def call(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_fleet_upgrade_dry_run_changes_nothing(db):
    site_row("a", image=V1, hold_reason="audit")
    site_row("b", image=V1)
    out = call("fleet_upgrade", "--image", V2, "--all", "--dry-run")
    assert "dry run: 1 sites" in out and "wave 1: 1 sites: b" in out
    assert "left out a: on hold: audit" in out
    assert not Rollout.objects.exists()
    with pytest.raises(CommandError, match="unknown sites: nope"):
        call("fleet_upgrade", "--image", V2, "--sites", "b,nope")
    with pytest.raises(CommandError, match="last wave must be 100%"):
        call("fleet_upgrade", "--image", V2, "--all", "--waves", "1,50%")


def test_upgrade_sync_status_rollback_and_control(live_sites, cluster, django_user_model):
    live_sites(4)
    django_user_model.objects.create_user("ops")
    out = call(
        "fleet_upgrade",
        "--image",
        V2,
        "--sites",  # all four; --all needs approval (tests/test_approvals.py)
        "site-0000,site-0001,site-0002,site-0003",
        "--waves",
        "1,100%",
        "--sync",
        "--wait",
        "--as",
        "ops",
    )
    rollout = Rollout.objects.get()
    assert out.startswith(f"rollout {rollout.pk}\n")
    assert rollout.status == Rollout.Status.SUCCEEDED and rollout.created_by.username == "ops"
    assert "wave 2: 3/3 settled" in out
    assert {snap.image for snap in cluster.list_sites().values()} == {V2}

    assert "[succeeded]" in call("rollout_status", str(rollout.pk))

    out = call("fleet_rollback", "--rollout", str(rollout.pk), "--sync")
    rollback = Rollout.objects.get(kind=Rollout.Kind.ROLLBACK)
    assert f"rollout {rollback.pk}" in out and rollback.status == Rollout.Status.SUCCEEDED
    assert {snap.image for snap in cluster.list_sites().values()} == {V1}
    out = call("fleet_rollback", "--sites", "site-0000,site-0001", "--sync")
    assert "nothing to do" in out  # rolling back twice is a no-op

    out = call("fleet_upgrade", "--image", "x/y:v3", "--sites", "site-0000")  # enqueued only
    started = Rollout.objects.get(image="x/y:v3")
    assert started.status == Rollout.Status.RUNNING
    with pytest.raises(CommandError, match="is running"):
        call("rollout_status", str(started.pk))
    assert "paused" in call("rollout_control", str(started.pk), "pause")
    with pytest.raises(CommandError, match="not running"):
        call("rollout_control", str(started.pk), "pause")
    assert "cancelled" in call("rollout_control", str(started.pk), "cancel")
    assert AuditEvent.objects.filter(rollout=started, actor_label="system:cli").count() == 4


def test_halted_sync_upgrade_exits_non_zero(settings, live_sites, cluster, kubesim):
    settings.SITE_PROGRESS_DEADLINE_SECONDS = 1
    live_sites(2)
    kubesim.set_fail_images(r":broken$")
    with pytest.raises(CommandError, match="ended reverted"):
        call("fleet_upgrade", "--image", "x/y:broken", "--sites", "site-0000,site-0001", "--sync")


def test_fleet_upgrade_qps_must_not_be_negative(db):
    site_row("a", image=V1)
    with pytest.raises(CommandError, match="--qps must be 0"):
        call("fleet_upgrade", "--image", V2, "--all", "--sync", "--qps", "-1")
    assert not Rollout.objects.exists()


def test_qps_overrides_the_configured_limit(cluster_settings):
    from cluster.gateway import Cluster

    cluster_settings.KUBE_QPS, cluster_settings.KUBE_BURST = 50, 100
    assert Cluster.from_settings().limiter.ceiling == 50
    raised = Cluster.from_settings(qps=400)
    assert raised.limiter.ceiling == 400 and raised.limiter.burst == 400
    assert Cluster.from_settings(qps=0).limiter.unlimited
