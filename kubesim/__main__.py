"""Command line: ``python -m kubesim serve [--host H] [--port P] [--kubeconfig PATH]
[--ready-after SECONDS] [--fail-images REGEX] [--switch-interval SECONDS]``,
``python -m kubesim fetch-openapi`` and
``python -m kubesim fetch-protobuf``.

``serve`` prints exactly one line, ``kubesim: serving http://HOST:PORT kubeconfig=PATH``, then
serves until SIGTERM or SIGINT and exits 0. ``fetch-openapi`` downloads the upstream OpenAPI
documents into var/cache/ (see kubesim/openapi_spec.py), which ``serve`` then publishes;
``fetch-protobuf`` compiles the upstream protobuf schema there (kubesim/protobuf_schema.py), with
which ``serve`` accepts protobuf request bodies.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading

from .sim import KubeSim

# A real API server answers on many cores while its controllers run. kubesim has one GIL, and
# Python's default 5 ms switch interval lets the controller thread keep it that long while
# request threads wait: a request's latency becomes the controller's time slice, not its own
# cost. 0.5 ms measured: a 1,000-site fleet_upgrade --sync --wait 6.1 s -> 5.3 s on 2 cores.
SERVE_SWITCH_INTERVAL = 0.0005
# kubesim's heap is the store and its watch history: hundreds of thousands of JSON dicts that
# live long and hold no cycles (refcounting frees them), so the cyclic collector's default
# 700-allocation gen-0 threshold makes it walk them again and again for nothing. Measured over
# a 1,000-site bench: 1.1 s of collections -> 0.2 s, fleet_upgrade --sync --wait 4.8 s -> 4.5 s.
# Gen 2 still runs (every 10 gen-1 passes), so cyclic garbage (tracebacks) is still freed.
SERVE_GC_THRESHOLDS = (50_000, 20, 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubesim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Kubernetes API emulator over HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument(
        "--kubeconfig", default=None, help="where to write the kubeconfig (default: a temp file)"
    )
    serve.add_argument(
        "--ready-after", type=float, default=0.5, help="seconds before a new pod is Ready"
    )
    serve.add_argument(
        "--fail-images", default=None, help="regex: pods with a matching image never become Ready"
    )
    serve.add_argument(
        "--switch-interval",
        type=float,
        default=SERVE_SWITCH_INTERVAL,
        help="seconds a thread may hold the GIL while others wait (sys.setswitchinterval)",
    )
    fetch = sub.add_parser(
        "fetch-openapi",
        help="download k8s.io/kubernetes's api/openapi-spec into var/cache (kubectl explain)",
    )
    fetch.add_argument(
        "--dest", default=None, help="directory to extract api/openapi-spec into (default: var/)"
    )
    fetch_pb = sub.add_parser(
        "fetch-protobuf",
        help="download k8s.io/api and k8s.io/apimachinery, compile their protobuf schema",
    )
    fetch_pb.add_argument(
        "--dest", default=None, help="directory for the compiled schema (default: var/)"
    )
    args = parser.parse_args(argv)
    if args.command == "fetch-protobuf":
        from pathlib import Path

        from . import protobuf_schema

        dest = protobuf_schema.fetch(Path(args.dest) if args.dest else None)
        print(f"kubesim: protobuf schema of k8s.io/api@{protobuf_schema.VERSION} in {dest}")
        return 0
    if args.command == "fetch-openapi":
        from pathlib import Path

        from . import openapi_spec

        dest = openapi_spec.fetch(Path(args.dest) if args.dest else None)
        print(
            f"kubesim: OpenAPI documents of {openapi_spec.MODULE}@{openapi_spec.VERSION} in {dest}"
        )
        return 0

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.setswitchinterval(args.switch_interval)  # this process serves kubesim and nothing else
    sim = KubeSim(
        ready_after=args.ready_after,
        fail_images=args.fail_images,
        host=args.host,
        port=args.port,
        kubeconfig_path=args.kubeconfig,
    )
    with sim:
        gc.freeze()  # what start-up built (modules, bootstrap objects) is never garbage
        gc.set_threshold(*SERVE_GC_THRESHOLDS)
        print(f"kubesim: serving {sim.url} kubeconfig={sim.kubeconfig_path}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
