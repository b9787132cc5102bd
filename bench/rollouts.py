"""``python -m bench rollouts``: our gated fleet upgrade against the seed's loops, same kubesim.

Starts ``python -m kubesim serve --ready-after 0`` as its own process (so its CPU is not ours),
sets Django up on a throwaway SQLite database, deploys N site Deployments (default 1,000),
then times, each moving every Deployment to a new image and waiting until all are rolled out:

* bare: a plain HTTP strategic-merge PATCH loop (httpx, one keep-alive connection), the
  floor for "change 1,000 images over HTTP";
* ours: ``fleet_upgrade`` semantics (waves 1,10%,50%,100%, health gate per wave, audit rows)
  with the engine in-process (``--sync``);
* kubectl: the seed's ``for d in $(kubectl get deployments ...); do kubectl set image ...``
  loop. A process per site is slow, so a sample of invocations is timed and extrapolated to
  N (printed as such).

Prints ratios (targets: >= 20x faster than kubectl, within 2x of bare), our process CPU per
site (target <= 5 ms) and the Deployment LIST requests per wave seen by kubesim (constant,
not per site). Exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

NAMESPACE = "bench-rollouts"
POLL = 0.1  # seconds between status reads while a wave settles
ROOT = Path(__file__).resolve().parent.parent
KUBECTL = str(Path(sys.executable).with_name("kubectl"))


def start_kubesim(kubeconfig: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubesim", "serve", "--ready-after", "0",
         "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("kubesim: serving "):
        proc.kill()
        raise RuntimeError(f"kubesim did not start: {line!r}")
    return proc, line.split()[2]


def setup_django(database: Path, kubeconfig: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="subscribie_admin.settings",
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{database}",
        KUBECONFIG=str(kubeconfig),
        SITES_NAMESPACE=NAMESPACE,
        Q_BROKER="orm",
        LOG_LEVEL="WARNING",
    )
    # The client-side rate limit would measure KUBE_QPS, not the tool: off unless asked for.
    os.environ.setdefault("KUBE_QPS", "0")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def deploy_fleet(count: int, image: str) -> list[str]:
    from cluster.gateway import Cluster
    from cluster.manifests import ClusterSettings, SiteSpec, deployment_manifest
    from sites.models import Site

    cluster = Cluster.from_settings()
    cluster.ensure_namespace()
    settings_ = ClusterSettings(
        namespace=NAMESPACE, base_domain="bench.test", progress_deadline_seconds=600
    )
    slugs = [f"site-{i:04d}" for i in range(count)]
    Site.objects.bulk_create(
        Site(slug=slug, title=slug, owner_email="bench@example.com", theme_name="jesmond",
             theme_colour="#000000", image=image, status=Site.Status.LIVE, canary=i < 1)
        for i, slug in enumerate(slugs)
    )  # fmt: skip

    def apply(slug: str) -> None:
        spec = SiteSpec(slug=slug, title=slug, owner_email="bench@example.com", image=image,
                        theme_name="jesmond", theme_colour="#000000")  # fmt: skip
        cluster.apply(deployment_manifest(spec, settings_, change_cause="bench"))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(apply, slugs))
    wait_rolled_out(cluster, image, count)
    return slugs


def wait_rolled_out(cluster, image: str, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snaps = cluster.list_sites()
        if len(snaps) == count and all(s.image == image and s.state.done for s in snaps.values()):
            return
        time.sleep(0.05)
    raise RuntimeError(f"fleet did not roll out to {image} within {timeout}s")


def hook(url: str, method: str, path: str) -> dict:
    import httpx

    return httpx.request(method, f"{url}/kubesim/{path}", timeout=30).json()


def bare_patch_loop(url: str, slugs: list[str], image: str) -> float:
    """The floor: one PATCH per Deployment over one keep-alive connection."""
    import httpx

    body = {"spec": {"template": {"spec": {"containers": [{"name": "subscribie",
                                                          "image": image}]}}}}  # fmt: skip
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        for slug in slugs:
            response = client.patch(
                f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{slug}",
                content=json.dumps(body),
                headers={"Content-Type": "application/strategic-merge-patch+json"},
            )
            response.raise_for_status()
    return time.perf_counter() - started


def kubectl_sample(kubeconfig: Path, slugs: list[str], image: str, sample: int) -> float:
    """Seconds for the seed loop over all slugs, extrapolated from ``sample`` invocations."""
    base = [KUBECTL, "--kubeconfig", str(kubeconfig), "-n", NAMESPACE]
    started = time.perf_counter()
    listed = subprocess.run(
        [*base, "get", "deployments", "-l", "subscribie=site",
         "-o", "jsonpath={.items[*].metadata.name}"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    get_seconds = time.perf_counter() - started
    assert len(listed) == len(slugs), (len(listed), len(slugs))
    started = time.perf_counter()
    for name in listed[:sample]:
        subprocess.run(
            [*base, "set", "image", f"deployment/{name}", f"subscribie={image}"],
            check=True, capture_output=True,
        )  # fmt: skip
    per_site = (time.perf_counter() - started) / sample
    return get_seconds + per_site * len(slugs)


def _approve(rollout) -> None:
    """A whole-fleet upgrade starts only when a second staff member approves it."""
    from django.contrib.auth.models import Permission, User

    from rollouts import approvals

    user, _ = User.objects.get_or_create(username="bench-approver", defaults={"is_staff": True})
    user.user_permissions.add(Permission.objects.get(codename="approve_rollout"))
    user = User.objects.get(pk=user.pk)
    approvals.rollout_approve(rollout=rollout, actor=user, enqueue=False)


def our_upgrade(image: str) -> tuple[float, float, int, object]:
    from rollouts import engine, services
    from sites.models import Site

    cpu_started = time.process_time()
    started = time.perf_counter()
    rollout = services.rollout_create(
        sites=Site.objects.all(), image=image, waves="1,10%,50%,100%", max_failures="0",
        wave_timeout=600, actor="system:bench", whole_fleet=True,
    )  # fmt: skip
    _approve(rollout)
    run = engine.run_until_settled(rollout.pk, poll=POLL)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return elapsed, cpu, run.rollout.wave_count, run.rollout


def list_requests(url: str) -> int:
    data = hook(url, "GET", "requests")
    return sum(
        r["count"] for r in data["requests"]
        if r["verb"] == "list" and r["resource"] == "deployments"
    )  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench rollouts", description=__doc__)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--kubectl-sample", type=int, default=50)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    with tempfile.TemporaryDirectory(prefix="bench-rollouts-") as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        proc, url = start_kubesim(kubeconfig)
        try:
            setup_django(Path(tmp) / "bench.sqlite3", kubeconfig)
            from cluster.gateway import Cluster

            n = args.sites
            print(f"kubesim {url}, ready-after 0; {n} sites; KUBE_QPS={os.environ['KUBE_QPS']}")
            t0 = time.perf_counter()
            slugs = deploy_fleet(n, "subscribie/subscribie:v1")
            print(f"deployed {n} sites in {time.perf_counter() - t0:.1f}s")
            cluster = Cluster.from_settings()

            patch_seconds = bare_patch_loop(url, slugs, "subscribie/subscribie:v2")
            wait_rolled_out(cluster, "subscribie/subscribie:v2", n)
            from sites.models import Site

            Site.objects.update(image="subscribie/subscribie:v2")

            hook(url, "POST", "requests/reset")
            ours, cpu, waves, rollout = our_upgrade("subscribie/subscribie:v3")
            lists = list_requests(url)
            wait_rolled_out(cluster, "subscribie/subscribie:v3", n)
            if rollout.status != "succeeded":
                print(f"our rollout ended {rollout.status}: {rollout.status_message}")
                return 1

            kubectl = kubectl_sample(kubeconfig, slugs, "subscribie/subscribie:v4",
                                     min(args.kubectl_sample, n))  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    cpu_ms = 1000 * cpu / n
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bare_ms = 1000 * patch_seconds / n
    print(f"bare HTTP PATCH loop:   {patch_seconds:7.2f}s  ({bare_ms:.2f} ms/site)")
    print(f"ours (gated, 4 waves):  {ours:7.2f}s  ({1000 * ours / n:.2f} ms/site, "
          f"health-gated, audited)")  # fmt: skip
    print(f"kubectl set image loop: {kubectl:7.2f}s  (extrapolated from "
          f"{min(args.kubectl_sample, n)} invocations)")  # fmt: skip
    faster = kubectl / ours
    vs_bare = ours / patch_seconds
    print(f"ours vs kubectl loop:   {faster:6.1f}x faster   (target >= 20x)")
    print(f"ours vs bare PATCH:     {vs_bare:6.2f}x slower   (target <= 2x)")
    print(f"tool CPU:               {cpu_ms:6.2f} ms/site (target <= 5 ms); peak RSS {rss:.0f} MB")
    print(f"status LISTs:           {lists} in {waves} waves = {lists / waves:.1f} per wave "
          f"for {n} sites (constant, not per site)")  # fmt: skip
    ok = faster >= 20 and vs_bare <= 2 and cpu_ms <= 5
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
