"""Command line: ``python -m kubesim serve [--host H] [--port P] [--kubeconfig PATH]
[--ready-after SECONDS] [--fail-images REGEX]``, ``python -m kubesim fetch-openapi`` and
``python -m kubesim fetch-protobuf``.

``serve`` prints exactly one line, ``kubesim: serving http://HOST:PORT kubeconfig=PATH``, then
serves until SIGTERM or SIGINT and exits 0. ``fetch-openapi`` downloads the upstream OpenAPI
documents into var/cache/ (see kubesim/openapi_spec.py), which ``serve`` then publishes;
``fetch-protobuf`` compiles the upstream protobuf schema there (kubesim/protobuf_schema.py), with
which ``serve`` accepts protobuf request bodies.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .sim import KubeSim


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
    sim = KubeSim(
        ready_after=args.ready_after,
        fail_images=args.fail_images,
        host=args.host,
        port=args.port,
        kubeconfig_path=args.kubeconfig,
    )
    with sim:
        print(f"kubesim: serving {sim.url} kubeconfig={sim.kubeconfig_path}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
