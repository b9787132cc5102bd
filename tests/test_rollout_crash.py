"""A worker killed mid-wave (SIGKILL) cannot strand a rollout or patch a site twice.

Runs real `manage.py qcluster` processes against the test database (SQLite file or
PostgreSQL) and kubesim, with whichever broker the suite runs on (ORM or Redis).
"""

import contextlib
import os
import signal
import subprocess
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule

from audit.models import AuditEvent
from rollouts import services
from rollouts.models import Rollout, RolloutTarget
from sites.models import Site
from subscribie_admin.schedules import ensure_schedules
from tests.fixtures.qcluster import spawn_qcluster
from tests.fixtures.sites import wait_until

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


def start_qcluster(settings, kubesim, log) -> subprocess.Popen:
    # Short jobs and leases so a lost chain is picked up within the test's patience.
    return spawn_qcluster(
        settings, str(kubesim.kubeconfig_path), log,
        ROLLOUT_JOB_SECONDS="2", ROLLOUT_LEASE_SECONDS="4",
    )  # fmt: skip


def kill(process: subprocess.Popen, sig=signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_sigkill_mid_wave_then_new_worker_completes_with_one_patch_per_site(
    live_sites, cluster, kubesim, kube_namespace, settings, tmp_path
):
    qcluster_log = (tmp_path / "qcluster.log").open("w")
    get_broker().purge_queue()  # jobs other tests left on a shared Redis queue are not ours
    ensure_schedules()
    live_sites(30)
    kubesim.reset_requests()
    # Slow pods keep the rollout mid-wave long enough to kill the worker there.
    kubesim.set_ready_after(1.5)
    rollout = services.rollout_create(
        sites=Site.objects.all(),
        image="subscribie/subscribie:v2",
        waves="1,30%,100%",
        wave_timeout=120,
        actor="tester",
    )
    services.rollout_start(rollout=rollout, actor="tester")  # enqueues the first tick

    first = start_qcluster(settings, kubesim, qcluster_log)
    try:
        wait_until(
            lambda: (
                RolloutTarget.objects.filter(rollout=rollout, wave=1)
                .exclude(status=RolloutTarget.Status.PENDING)
                .exists()
            ),
            timeout=90,
        )
    finally:
        kill(first)
    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.RUNNING  # stranded mid-rollout, lease held

    # The every-minute schedule is what rescues it; make it due now rather than in a minute.
    Schedule.objects.filter(func="rollouts.tasks.tick_active_rollouts").update(
        next_run=timezone.now() - timedelta(seconds=1)
    )
    second = start_qcluster(settings, kubesim, qcluster_log)
    try:
        wait_until(
            lambda: Rollout.objects.get(pk=rollout.pk).status not in Rollout.ACTIVE_STATUSES,
            timeout=150,
            interval=0.5,
        )
    finally:
        kill(second)

    rollout.refresh_from_db()
    assert rollout.status == Rollout.Status.SUCCEEDED, rollout.status_message
    images = {slug: snap.image for slug, snap in cluster.list_sites().items()}
    assert set(images.values()) == {"subscribie/subscribie:v2"} and len(images) == 30
    per_site = kubesim.requests().per_object("patch", "deployments", kube_namespace)
    assert sorted(set(per_site.values())) == [1] and len(per_site) == 30
    patched = Counter(
        AuditEvent.objects.filter(rollout=rollout, action="target.patched").values_list(
            "site_id", flat=True
        )
    )
    assert len(patched) == 30 and set(patched.values()) == {1}
