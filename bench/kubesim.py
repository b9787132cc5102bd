"""``python -m bench kubesim``: is the emulator fast enough never to limit a product benchmark?

Runs ``python -m kubesim serve --ready-after 0`` as a separate process (as the product sees
it) and drives it over HTTP/1.1 keep-alive connections from a thread pool. Figures:

* strategic-merge PATCH/s (target >= 300), against a baseline of ``GET /version`` requests/s
  measured with the same pool in the same run (the transport ceiling);
* LIST of 5,000 Deployments by label selector, seconds including JSON decoding (target <= 0.5);
* a rollout of 1,000 single-replica Deployments, seconds until all report rolled out.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

NS = "bench"


class Pool:
    """One keep-alive connection per worker thread."""

    def __init__(self, url: str, workers: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.workers = workers
        self._local = threading.local()
        self.executor = ThreadPoolExecutor(workers)

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self._local.conn = conn
        return conn

    def request(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> tuple[int, bytes]:
        conn = self._conn()
        data = json.dumps(body).encode() if body is not None else None
        headers = (
            {"Content-Type": ctype, "Accept": "application/json"}
            if data is not None
            else {"Accept": "application/json"}
        )
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    def run(self, n: int, fn: Callable[[int], None]) -> float:
        """Run ``fn(i)`` for i in range(n) across the pool; returns elapsed seconds."""
        t0 = time.perf_counter()
        list(self.executor.map(fn, range(n)))
        return time.perf_counter() - t0


def deployment(name: str, site: bool = True, replicas: int = 1) -> dict[str, Any]:
    labels = {"subscribie": "site" if site else "other", "subscribie-site": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"subscribie-site": name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "subscribie",
                            "image": "subscribie/subscribie:v0.10",
                            "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                        }
                    ]
                },
            },
        },
    }


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubesim", "serve", "--ready-after", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("kubesim: serving "):
        proc.kill()
        raise RuntimeError(f"kubesim did not start: {line!r}")
    return proc, line.split()[2]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench kubesim")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--patches", type=int, default=3000)
    parser.add_argument("--list-size", type=int, default=5000)
    parser.add_argument("--rollout-size", type=int, default=1000)
    args = parser.parse_args(argv)

    proc, url = start_server()
    pool = Pool(url, args.workers)
    base = f"/apis/apps/v1/namespaces/{NS}/deployments"
    results: list[tuple[str, float, str, str]] = []
    try:
        pool.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})

        # Baseline: the cheapest request the server answers, through the same pool.
        n_base = args.patches
        t = pool.run(n_base, lambda i: pool.request("GET", "/version") and None)
        baseline_rps = n_base / t
        results.append(("baseline GET /version", baseline_rps, "req/s", ""))

        # Strategic-merge PATCH throughput on 200 deployments with 0 replicas (no controller noise).
        targets = 200
        pool.run(
            targets, lambda i: pool.request("POST", base, deployment(f"p{i}", replicas=0)) and None
        )

        def patch(i: int) -> None:
            status, _ = pool.request(
                "PATCH",
                f"{base}/p{i % targets}",
                {
                    "metadata": {"annotations": {"bench/n": str(i)}},
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [{"name": "subscribie", "image": f"img:{i % 7}"}]
                            }
                        }
                    },
                },
                "application/strategic-merge-patch+json",
            )
            assert status == 200, status

        t = pool.run(args.patches, patch)
        patch_rps = args.patches / t
        results.append(
            (
                "strategic-merge PATCH",
                patch_rps,
                "req/s",
                f"{patch_rps / baseline_rps:.2f}x baseline; target >= 300/s: {'OK' if patch_rps >= 300 else 'MISS'}",  # noqa: E501 - verbatim message
            )
        )

        # LIST by label selector out of list-size site deployments (+10% others).
        t0 = time.perf_counter()
        n_other = args.list_size // 10
        pool.run(
            args.list_size - targets,
            lambda i: pool.request("POST", base, deployment(f"l{i}", replicas=0)) and None,
        )
        pool.run(
            n_other,
            lambda i: (
                pool.request("POST", base, deployment(f"o{i}", site=False, replicas=0)) and None
            ),
        )
        create_s = time.perf_counter() - t0
        creates = args.list_size - targets + n_other
        results.append(
            (
                "create Deployment",
                creates / create_s,
                "req/s",
                f"{creates / create_s / baseline_rps:.2f}x baseline",
            )
        )
        times, decode = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            status, body = pool.request("GET", f"{base}?labelSelector=subscribie%3Dsite")
            t1 = time.perf_counter()
            items = json.loads(body)["items"]
            times.append(t1 - t0)
            decode.append(time.perf_counter() - t1)
            assert status == 200 and len(items) == args.list_size, (status, len(items))
        list_s = min(times)
        results.append(
            (
                f"LIST {args.list_size} by label",
                list_s,
                "s",
                f"served, {len(body) / 1e6:.1f} MB received; target <= 0.5 s: {'OK' if list_s <= 0.5 else 'MISS'}; "  # noqa: E501 - verbatim message
                f"= {list_s * baseline_rps:.0f} baseline requests",
            )
        )
        results.append(
            (
                "  + client json.loads of it",
                min(decode),
                "s",
                "client-side cost, not the emulator's",
            )
        )
        pool.request("DELETE", f"/api/v1/namespaces/{NS}")
        pool.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})

        # Rollout of rollout-size single-replica deployments with ready-after 0.
        n = args.rollout_size
        pool.run(n, lambda i: pool.request("POST", base, deployment(f"r{i}")) and None)

        def all_rolled(image: str) -> bool:
            _, body = pool.request("GET", f"{base}?labelSelector=subscribie%3Dsite")
            items = json.loads(body)["items"]
            return len(items) == n and all(
                d["spec"]["template"]["spec"]["containers"][0]["image"] == image
                and d["status"].get("observedGeneration", 0) >= d["metadata"]["generation"]
                and d["status"].get("updatedReplicas", 0) == 1
                and d["status"].get("replicas", 0) == 1
                and d["status"].get("availableReplicas", 0) == 1
                for d in items
            )

        t0 = time.perf_counter()
        while not all_rolled("subscribie/subscribie:v0.10"):
            time.sleep(0.1)
        initial_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.run(
            n,
            lambda i: (
                pool.request(
                    "PATCH",
                    f"{base}/r{i}",
                    {
                        "spec": {
                            "template": {
                                "spec": {
                                    "containers": [
                                        {
                                            "name": "subscribie",
                                            "image": "subscribie/subscribie:v0.11",
                                        }
                                    ]
                                }
                            }
                        }
                    },
                    "application/strategic-merge-patch+json",
                )
                and None
            ),
        )
        while not all_rolled("subscribie/subscribie:v0.11"):
            time.sleep(0.1)
        rollout_s = time.perf_counter() - t0
        results.append(
            (f"initial deploy of {n}", initial_s, "s", "after creation, until all available")
        )
        results.append(
            (
                f"rollout of {n} x 1 replica",
                rollout_s,
                "s",
                f"patch + roll + available; target well under 60 s: {'OK' if rollout_s < 30 else 'MISS'}",  # noqa: E501 - verbatim message
            )
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    print(f"kubesim benchmark ({args.workers} client threads, server in its own process)")
    for name, value, unit, note in results:
        print(f"  {name:<32} {value:>10.3f} {unit:<6} {note}")
    return 0
