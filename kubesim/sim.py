"""``KubeSim``: the emulator as an object (server thread + controllers + test hooks)."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from .api import Api
from .controllers import Controllers
from .hooks import AvailabilityLedger, Faults, RequestLog, Requests
from .server import KubeHTTPServer
from .store import Store


def kubeconfig_document(url: str, context: str = "kubesim") -> dict[str, Any]:
    """A kubeconfig for ``url`` that both kubectl and ``kubernetes.config`` accept."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": url}}],
        "users": [{"name": context, "user": {"token": "kubesim"}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": "default"},
            }
        ],
        "current-context": context,
        "preferences": {},
    }


class KubeSim:
    """An in-process Kubernetes API emulator.

    Usage::

        with KubeSim(ready_after=0.5, fail_images=None) as sim:
            kubernetes.config.load_kube_config(sim.kubeconfig_path)

    ``ready_after``: seconds before a new pod becomes Ready. ``fail_images``: regex searched in
    container images; matching pods never become Ready (CrashLoopBackOff).
    """

    def __init__(
        self,
        ready_after: float = 0.5,
        fail_images: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig_path: str | os.PathLike[str] | None = None,
        tick: float = 0.02,
        bookmark_interval: float = 1.0,
    ) -> None:
        self.store = Store()
        self.api = Api(self.store)
        self.controllers = Controllers(self.api, ready_after, fail_images, tick)
        self.ledger = AvailabilityLedger(self.store)
        self.request_log = RequestLog()
        self.faults = Faults(self.store)
        self.bookmark_interval = bookmark_interval
        self._host, self._port = host, port
        self._kubeconfig_arg = kubeconfig_path
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._httpd: KubeHTTPServer | None = None
        self._httpd_port = 0
        self._thread: threading.Thread | None = None
        self.url = ""
        self.kubeconfig_path = ""
        self._fail_images = fail_images
        self._bootstrap()

    def _bootstrap(self) -> None:
        from .api import now_iso
        from .bootstrap import create_node

        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.api.create(self.api_types("namespaces"), "", {"metadata": {"name": ns}})
        create_node(self.api, now_iso())
        self.api.create(
            self.api_types("services"),
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "ports": [{"name": "https", "port": 443, "targetPort": 6443}],
                    "clusterIP": "10.96.0.1",
                },
            },
        )

    @staticmethod
    def api_types(key: str) -> Any:
        from .resources import BY_KEY

        return BY_KEY[key]

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> KubeSim:
        self._serve()
        if self._kubeconfig_arg is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="kubesim-")
            path = Path(self._tmpdir.name) / "kubeconfig"
        else:
            path = Path(self._kubeconfig_arg)
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(kubeconfig_document(self.url), sort_keys=False))
        self.kubeconfig_path = str(path)
        self.controllers.start()
        return self

    def _serve(self) -> None:
        """Listen on the configured port (the same one again after a restart) and serve."""
        port = self._port or (self._httpd_port or 0)
        self._httpd = KubeHTTPServer((self._host, port), self)
        host, bound = self._httpd.server_address[:2]
        self._httpd_port = bound
        self.url = f"http://{host}:{bound}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="kubesim-http",
            daemon=True,
        )
        self._thread.start()

    def _stop_serving(self) -> int:
        """Stop listening and reset every client connection, as a dying API server does;
        returns how many connections were reset."""
        if self._httpd is None:
            return 0
        httpd, self._httpd = self._httpd, None
        self.store.cut_watches()
        httpd.shutdown()
        httpd.server_close()
        return httpd.drop_connections()

    @property
    def serving(self) -> bool:
        return self._httpd is not None

    def restart(self, down_for: float = 0.0) -> int:
        """Restart the API server with its state kept: stop serving (listener closed, every
        connection and watch dropped), stay down ``down_for`` seconds, serve again on the same
        port. The store, resourceVersions, controllers, availability ledger, request log and
        faults are untouched, as etcd and the controller manager survive an apiserver restart.
        Returns how many client connections were reset.
        """
        dropped = self._stop_serving()
        if down_for > 0:
            time.sleep(down_for)
        self._serve()
        return dropped

    def stop(self) -> None:
        self.controllers.stop()
        self._stop_serving()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- runtime configuration ------------------------------------------------------------------
    @property
    def ready_after(self) -> float:
        return self.controllers.ready_after

    def set_ready_after(self, seconds: float) -> None:
        """Seconds before pods created from now on become Ready."""
        self.controllers.ready_after = float(seconds)

    @property
    def fail_images(self) -> str | None:
        return self._fail_images

    def set_fail_images(self, regex: str | None) -> None:
        """Pods started from now on whose image matches ``regex`` never become Ready."""
        self._fail_images = regex or None
        self.controllers.set_fail_images(regex)

    # -- test hooks
    def availability(self, namespace: str | None = None) -> dict[str, int]:
        """``{"namespace/name": min availableReplicas while replicas >= 1}`` since reset."""
        return self.ledger.snapshot(namespace)

    def reset_availability(self, namespaces: list[str] | None = None) -> None:
        self.ledger.reset(namespaces)

    def requests(self) -> Requests:
        return self.request_log.snapshot()

    def reset_requests(self) -> None:
        self.request_log.reset()

    def set_pod_ready(self, namespace: str, pod: str, ready: bool) -> bool:
        """Flip a running pod's readiness, as a failing (or recovering) readiness probe does.

        The Deployment that owns it loses (or regains) an available replica. False if the pod
        does not exist or has not started yet.
        """
        with self.store.lock:
            changed = self.controllers.set_pod_ready(namespace, pod, ready)
        self.controllers._wake.set()
        return changed

    def set_deployment_ready(self, namespace: str, deployment: str, ready: bool) -> list[str]:
        """:meth:`set_pod_ready` for every running pod of ``deployment``; returns their names.

        ``ready=False`` makes the Deployment unavailable (``availableReplicas`` 0) until it is
        called again with ``ready=True``; the pods are not replaced, as a real Deployment
        controller leaves pods that fail readiness in place.
        """
        from .resources import DEPLOYMENTS, PODS, REPLICASETS

        with self.store.lock:
            d = self.store.get(DEPLOYMENTS.key, namespace, deployment)
            if d is None:
                return []
            pods = [
                pod["metadata"]["name"]
                for rs in self.api.owned_by(d, REPLICASETS.key)
                for pod in self.api.owned_by(rs, PODS.key)
            ]
            flipped = [
                name for name in pods if self.controllers.set_pod_ready(namespace, name, ready)
            ]
        self.controllers._wake.set()
        return sorted(flipped)

    def settle(self, timeout: float = 10.0) -> None:
        """Block until the controllers have no immediate work (pending timers aside)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.store.lock:
                busy = bool(
                    self.controllers._dirty_d
                    or self.controllers._dirty_rs
                    or self.controllers.endpoints.dirty
                )
            if not busy:
                return
            time.sleep(self.controllers.tick)
