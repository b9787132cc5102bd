"""``python -m bench pages``: server render time and query count of the admin's main pages.

Seeds a throwaway SQLite database with N sites (default 1,000 and 10,000), a rollout history
of three finished whole-fleet upgrades (the dashboard's chart reads it) and a 5,000-site
rollout mid-way (failed targets with reasons, a paused wave), then renders through Django's
test client (the whole middleware and template stack, production settings: DEBUG off):

* baseline: the admin's app index for sites (a trivial admin page: session, user, menu);
* the dashboard (admin index), the site changelist (first page), a site's page, and the rollout
  page and its JSON progress endpoint for the 5,000-site rollout.

Each figure is the median of several renders, printed with its ratio to the baseline from the
same run and its query count. Targets (issue 12): the site changelist with 10,000 sites and the
5,000-site rollout page each <= 10 queries and <= 300 ms; every page's query count the same at
1,000 and 10,000 sites. Exit status 1 on a miss.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import production_settings

ROOT = Path(__file__).resolve().parent.parent
MAX_QUERIES = 10
MAX_MS = 300.0
ROLLOUT_SITES = 5000


def setup_django(database: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "subscribie_admin.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    production_settings(os.environ, "pages")
    os.environ["ALLOWED_HOSTS"] = "testserver"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def seed(count: int) -> dict[str, int]:
    """``count`` sites, three finished whole-fleet upgrades, one 5,000-site rollout mid-way."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from rollouts.models import Rollout, RolloutTarget
    from sites.models import Signup, Site

    images = [f"subscribie/subscribie:v{i}" for i in range(1, 5)]
    now = timezone.now()
    with transaction.atomic():
        Site.objects.bulk_create(
            [
                Site(
                    slug=f"site-{i:05d}", title=f"Site {i}", owner_email=f"o{i}@example.com",
                    theme_name="jesmond", theme_colour="#aa3355", image=images[3],
                    observed_image=images[3], status=Site.Status.LIVE, ready_replicas=1,
                    canary=i < 3, observed_at=now,
                )
                for i in range(count)
            ],
            batch_size=2000,
        )  # fmt: skip
        Signup.objects.bulk_create(
            [Signup(couch_id=f"doc-{i}", status="pending", company_name=f"Shop {i}")
             for i in range(50)]
        )  # fmt: skip
        site_ids = list(Site.objects.order_by("pk").values_list("pk", flat=True))
        for n in range(3):  # history: v1 -> v2 -> v3 -> v4, every site
            rollout = Rollout.objects.create(
                image=images[n + 1], selection="all", status="succeeded", wave_count=3,
                actor_label="bench", started_at=now, finished_at=now,
            )  # fmt: skip
            RolloutTarget.objects.bulk_create(
                [
                    RolloutTarget(rollout=rollout, site_id=pk, wave=min(i, 2), position=i,
                                  from_image=images[n], to_image=images[n + 1], status="succeeded")
                    for i, pk in enumerate(site_ids)
                ],
                batch_size=2000,
            )  # fmt: skip
        live = Rollout.objects.create(
            image="subscribie/subscribie:v5", selection="all", status="paused", wave_count=4,
            current_wave=2, waves="1,10%,50%,100%", actor_label="bench", started_at=now,
        )  # fmt: skip
        in_rollout = site_ids[:ROLLOUT_SITES]
        bounds = [1, len(in_rollout) // 10, len(in_rollout) // 2, len(in_rollout)]

        def wave_of(i: int) -> int:
            return next(w for w, bound in enumerate(bounds) if i < bound)

        def status_of(i: int) -> str:
            wave = wave_of(i)
            if wave < 2:
                return "succeeded"
            if wave == 2:
                return "failed" if i % 97 == 0 else "succeeded" if i % 2 else "waiting"
            return "pending"

        RolloutTarget.objects.bulk_create(
            [
                RolloutTarget(
                    rollout=live, site_id=pk, wave=wave_of(i), position=i,
                    from_image=images[3] if wave_of(i) < 3 else "",
                    to_image="subscribie/subscribie:v5", status=status_of(i),
                    last_error="progress deadline exceeded" if status_of(i) == "failed" else "",
                )
                for i, pk in enumerate(in_rollout)
            ],
            batch_size=2000,
        )  # fmt: skip
    get_user_model().objects.create_superuser("bench", "bench@example.com", "bench-pw-123")
    return {"rollout": live.pk, "site": site_ids[0], "rollout_sites": len(in_rollout)}


def measure(client, url: str, repeats: int) -> tuple[float, int]:
    """Median milliseconds of ``repeats`` renders, and the queries of one render.

    Queries are counted by an execute wrapper, not the debug query log: the request signals
    reset that log mid-request.
    """
    from django.db import connection

    response = client.get(url, secure=True)  # warm: templates compiled, caches filled
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code}")
    executed = []

    def count(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get(url, secure=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.get(url, secure=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), len(executed)


def run_size(count: int, repeats: int) -> dict[str, tuple[float, int]]:
    from django.db import connection
    from django.test import Client

    from audit.models import AuditEvent
    from rollouts.models import Rollout, RolloutTarget
    from sites.models import Signup, Site

    with connection.cursor() as cursor:  # a fresh fleet for each size
        for model in (AuditEvent, RolloutTarget, Rollout, Site, Signup):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
    from django.contrib.auth import get_user_model

    get_user_model().objects.all().delete()
    ids = seed(count)
    client = Client()
    # force_login: django-axes' backend needs a request, which Client.login does not pass.
    # Production settings require a verified second factor: a TOTP device, verified in the
    # session as django-otp's login() records it.
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = get_user_model().objects.get(username="bench")
    device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    pages = {
        "baseline (app index)": "/admin/sites/",
        "dashboard": "/admin/",
        "site changelist": "/admin/sites/site/",
        "site page": f"/admin/sites/site/{ids['site']}/change/",
        "rollout page": (f"/admin/rollouts/rollout/{ids['rollout']}/change/"),
        "rollout progress JSON": f"/admin/rollouts/rollout/{ids['rollout']}/progress.json",
    }
    return {name: measure(client, url, repeats) for name, url in pages.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench pages", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="fleet sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    misses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        setup_django(Path(tmp) / "bench.sqlite3")
        results = {size: run_size(size, args.repeats) for size in sizes}
    for size, figures in results.items():
        base_ms = next(iter(figures.values()))[0]
        print(
            f"\n{size:,} sites; the rollout page shows a {min(size, ROLLOUT_SITES):,}-site rollout"
            f" (median of {args.repeats} renders; ratio to the baseline page)"
        )
        print(f"  {'page':34} {'ms':>8} {'ratio':>7} {'queries':>8}")
        for name, (ms, queries) in figures.items():
            print(f"  {name:34} {ms:8.1f} {ms / base_ms:6.1f}x {queries:8d}")
            bounded = name == "site changelist" or name.startswith("rollout page")
            if bounded and (queries > MAX_QUERIES or ms > MAX_MS):
                misses.append(f"{name} at {size:,} sites: {ms:.0f} ms, {queries} queries")
    if len(results) > 1:
        first, *others = results.values()
        for other in others:
            for name, (_, queries) in first.items():
                if other[name][1] != queries:
                    misses.append(f"{name}: {queries} queries grew to {other[name][1]}")
    print(
        f"\ntargets: site changelist and rollout page <= {MAX_QUERIES} queries and "
        f"<= {MAX_MS:.0f} ms; query counts constant across sizes"
    )
    for miss in misses:
        print(f"MISS: {miss}")
    print("all targets met" if not misses else f"{len(misses)} target(s) missed")
    return 1 if misses else 0
