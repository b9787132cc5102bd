"""``python -m bench signups``: importing signups and refreshing site status at scale.

Figures, each against a baseline measured in the same run (absolute times are noisy here):

* first import of N signup documents (default 10,000) vs reading the same ``_changes`` feed
  raw with the same client and batch size, from a warmed server, as the import reads it
  (target: <= 5 s and within 1.5x of raw); rounds of one raw read and one import afresh, the
  best of each compared (``--repeat``, default 3);
* a no-change run (target <= 0.5 s);
* status refresh of M sites (default 2,000) on kubesim: API calls made (target: constant) and
  seconds, vs one bare paged LIST of the same Deployments over HTTP (target <= 2 s).

Exit status 1 when a target is missed.

Runs on a throwaway SQLite database, a fresh CouchDB-compatible server and a fresh kubesim.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import production_settings

ROOT = Path(__file__).resolve().parent.parent


def setup_django(tmp: Path) -> None:
    """A throwaway database; must run before anything imports models."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "subscribie_admin.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    production_settings(os.environ, "signups")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def signup_docs(count: int) -> list[dict]:
    return [
        {
            "_id": f"bench-{i:06d}",
            "queue_state": "deploy",
            "company": {"name": f"Bench Shop {i}"},
            "users": [f"owner{i}@example.com"],
            "theme": {"name": "jesmond", "colour": "#aa3355"},
        }
        for i in range(count)
    ]


IMPORT_RATIO_TARGET = 1.5


def bench_import(count: int, batch: int, repeat: int) -> list[str]:
    """Returns the targets missed."""
    from sites import sync
    from sites.models import Signup, SyncCheckpoint
    from tests.fixtures.couchdb import CouchServer

    with CouchServer() as server:
        client = server.client("signups")
        client.ensure_database()
        docs = signup_docs(count)
        for i in range(0, count, 1000):
            client.bulk_docs(docs[i : i + 1000])

        def read_feed() -> int:
            since, read = None, 0
            while True:
                page = client.changes(since=since, limit=batch)
                read += len(page.results)
                since = page.last_seq
                if len(page.results) < batch:
                    return read

        # Where the import's CPU goes: the sync's feed reader (a thread of its own, the only
        # caller of client.changes) and everything else, on the calling thread.
        reader_cpu = [0.0]
        changes = client.changes

        def timed_changes(*args, **kwargs):
            started = time.thread_time()
            try:
                return changes(*args, **kwargs)
            finally:
                reader_cpu[0] += time.thread_time() - started

        # The server's first read of a new feed is a third slower than later ones, and the
        # import reads it after the baseline: warm it first, so both read a warm server.
        read_feed()
        # This machine's speed moves by half from one minute to the next: each round reads
        # the feed raw and then imports it afresh, so the two meet the same conditions, and
        # the best of each is compared (as timeit does).
        runs = []
        for _ in range(repeat):
            Signup.objects.all().delete()
            SyncCheckpoint.objects.all().delete()
            t0, cpu0 = time.perf_counter(), time.thread_time()
            read = read_feed()
            raw, raw_cpu = time.perf_counter() - t0, time.thread_time() - cpu0
            reader_cpu[0] = 0.0
            client.changes = timed_changes
            t0, cpu0 = time.perf_counter(), time.thread_time()
            summary = sync.signups_sync(client=client, batch_size=batch)
            first, store_cpu = time.perf_counter() - t0, time.thread_time() - cpu0
            client.changes = changes
            runs.append((raw, first, raw_cpu, store_cpu, reader_cpu[0], summary))
        t0 = time.perf_counter()
        again = sync.signups_sync(client=client, batch_size=batch)
        nochange = time.perf_counter() - t0

    raw = min(run[0] for run in runs)
    first, raw_cpu, store_cpu, reader, summary = min(runs, key=lambda run: run[1])[1:]
    rounds = ", ".join(f"{run[1] / run[0]:.2f}x" for run in runs)
    print(f"signups: {count} docs, batch {batch}, best of {repeat} rounds")
    print(f"  raw feed read (baseline) {raw:7.2f} s  ({read} changes, server warmed)")
    print(
        f"  first import             {first:7.2f} s  = {first / raw:4.2f}x raw   "
        f"(target <= 5 s, <= {IMPORT_RATIO_TARGET}x)  imported {summary.imported}, "
        f"rejected {summary.rejected}; each round: {rounds}"
    )
    print(
        f"  CPU: raw read {raw_cpu:.2f} s (the rest is the server); import: validating and "
        f"storing {store_cpu:.2f} s ({1e6 * store_cpu / count:.0f} us/doc), feed reader "
        f"{reader:.2f} s"
    )
    print(f"  no-change run            {nochange:7.3f} s  (target <= 0.5 s)  read {again.read}")
    misses = []
    if first / raw > IMPORT_RATIO_TARGET:
        misses.append(f"first import {first / raw:.2f}x raw > {IMPORT_RATIO_TARGET}x")
    if first > 5:
        misses.append(f"first import {first:.2f} s > 5 s")
    if any(run[5].imported != count for run in runs):
        misses.append(f"imported {[run[5].imported for run in runs]} of {count}")
    if nochange > 0.5:
        misses.append(f"no-change run {nochange:.3f} s > 0.5 s")
    return misses


def bench_refresh(count: int) -> list[str]:
    """Returns the targets missed."""
    import httpx
    from django.conf import settings

    from cluster.gateway import Cluster
    from cluster.manifests import ClusterSettings, SiteSpec, deployment_manifest
    from kubesim import KubeSim
    from sites import services
    from sites.models import Site

    with KubeSim(ready_after=0) as sim:
        settings.KUBECONFIG = str(sim.kubeconfig_path)
        cluster = Cluster.connect(
            namespace="bench", kubeconfig=str(sim.kubeconfig_path), qps=0, pool_size=8
        )
        cluster.ensure_namespace()
        config = ClusterSettings(
            namespace="bench", base_domain="b.test", progress_deadline_seconds=600
        )
        specs = [
            SiteSpec(
                slug=f"site-{i:05d}",
                title=f"Site {i}",
                owner_email="o@example.com",
                image="subscribie/subscribie:v1",
                theme_name="jesmond",
                theme_colour="#aa3355",
            )
            for i in range(count)
        ]
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda s: cluster.apply(deployment_manifest(s, config, change_cause="b")), specs
                )
            )
        Site.objects.bulk_create(
            Site(
                slug=s.slug,
                title=s.title,
                owner_email=s.owner_email,
                theme_name="jesmond",
                theme_colour="#aa3355",
                image=s.image,
                status=Site.Status.DEPLOYING,
                last_generation=1,
            )
            for s in specs
        )
        sim.settle(timeout=60)

        url = f"{sim.url}/apis/apps/v1/namespaces/bench/deployments"
        t0 = time.perf_counter()
        with httpx.Client() as http:
            token, items = None, 0
            while True:
                params = {"labelSelector": "subscribie=site", "limit": 500}
                if token:
                    params["continue"] = token
                page = http.get(url, params=params).json()
                items += len(page["items"])
                token = page["metadata"].get("continue")
                if not token:
                    break
        raw = time.perf_counter() - t0

        sim.reset_requests()
        t0 = time.perf_counter()
        summary = services.sites_refresh_status(cluster=cluster)
        refresh = time.perf_counter() - t0
        calls = sim.requests().total
    print(f"status refresh: {count} sites")
    print(f"  bare paged LIST (baseline) {raw:6.2f} s  ({items} deployments)")
    print(
        f"  sites_refresh_status       {refresh:6.2f} s  = {refresh / raw:4.2f}x LIST  "
        f"(target <= 2 s)  API calls {calls} (pages of 500), went live {len(summary.live)}"
    )
    pages = -(-count // 500)
    misses = []
    if refresh > 2:
        misses.append(f"status refresh {refresh:.2f} s > 2 s")
    if calls > pages:
        misses.append(f"status refresh made {calls} API calls > {pages} pages")
    return misses


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench signups")
    parser.add_argument("--signups", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of raw read + import")
    parser.add_argument("--sites", type=int, default=2_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        setup_django(Path(tmp))
        import manage  # on sys.path since setup_django

        # The collector's thresholds of every manage.py process (signups_sync, the qcluster's
        # workers, forked from it): the figures are those of the command, run in-process.
        gc.set_threshold(*manage.GC_THRESHOLDS)
        misses = bench_import(args.signups, args.batch, args.repeat) + bench_refresh(args.sites)
    for miss in misses:
        print(f"MISS: {miss}")
    print("all targets met" if not misses else f"{len(misses)} target(s) missed")
    return 1 if misses else 0
