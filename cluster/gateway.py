"""The one seam to Kubernetes: every API call the product makes goes through ``Cluster``.

This is the only module that imports ``kubernetes``. It speaks the real API through the
official client, so tests run it unchanged against kubesim over HTTP.

Invariants:
- Every call passes the client-side rate limit (``KUBE_QPS``/``KUBE_BURST``, ``0`` = off); a
  429 pauses every caller for its ``Retry-After`` and slows the limit down
  (``cluster.rate_limit.AdaptiveRateLimiter``).
- 429 (honouring ``Retry-After``), 5xx and connection errors are retried a bounded number of
  times; anything else surfaces at once as ``ClusterError``.
- A write answered with an error may still have been applied (a 500 after the write), so a
  retried image patch first reads the Deployment and does not patch again if it already runs
  the image.
- Reads return plain dicts (the API's JSON) and pure snapshots from ``cluster.status``; secret
  values are never logged or returned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import urllib3

# Only the client's transport, configuration and kubeconfig loader: not the generated
# ``AppsV1Api``/``CoreV1Api``/``NetworkingV1Api``, whose first use imports the whole model
# package (~1.3 s of a command's start-up) for requests we send as plain JSON anyway.
from kubernetes import config as k8s_config
from kubernetes.client.api_client import ApiClient
from kubernetes.client.configuration import Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.client.rest import RESTResponse

from cluster.manifests import CONTAINER_NAME, FIELD_MANAGER, SITE_LABEL, SITE_NAME_LABEL
from cluster.rate_limit import AdaptiveRateLimiter
from cluster.status import DeploymentSnapshot, snapshot
from cluster.wire import decode_deployment, decode_deployment_list

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Sent by an API server with Priority and Fairness on every answer, including its 429s.
PF_PRIORITY_LEVEL_HEADER = "X-Kubernetes-PF-PriorityLevel-UID"
SITE_SELECTOR = f"{SITE_LABEL}=site"
# Label selectors are sent in the URL; keep each `in (...)` list well under URL limits.
SELECTOR_CHUNK = 200
LIST_PAGE_SIZE = 500
DEPLOYMENTS_PATH = "/apis/apps/v1/namespaces/{namespace}/deployments"
DEPLOYMENT_PATH = DEPLOYMENTS_PATH + "/{name}"
NAMESPACES_PATH = "/api/v1/namespaces"
NAMESPACE_PATH = NAMESPACES_PATH + "/{name}"
SECRETS_PATH = "/api/v1/namespaces/{namespace}/secrets"
# The object path of each kind a site is made of (what the generated *_namespaced_* calls use).
OBJECT_PATHS = {
    "Deployment": DEPLOYMENT_PATH,
    "Service": "/api/v1/namespaces/{namespace}/services/{name}",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/{name}",
    "Secret": SECRETS_PATH + "/{name}",
}


class ClusterError(Exception):
    """A Kubernetes call that failed for good. ``status`` is the HTTP status if there was one."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = ""):
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def transient(self) -> bool:
        """True when trying again later may succeed (throttling, server errors, no answer)."""
        return self.status is None or self.status in RETRYABLE_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0


def _error_message(exc: ApiException) -> tuple[str, str]:
    """Message and reason from a Kubernetes ``Status`` body, falling back to the HTTP reason."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    reason = body.get("reason", "") if isinstance(body, dict) else ""
    return (message or f"HTTP {exc.status} {exc.reason}"), reason or ""


def _retry_after(exc: ApiException) -> float | None:
    """The wait a throttling answer asks for: ``Retry-After``, else the Status body's
    ``details.retryAfterSeconds`` (what API Priority and Fairness and the max-in-flight filter
    send with a 429)."""
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is None:
        try:
            body = json.loads(exc.body or "{}")
            value = ((body.get("details") or {}) if isinstance(body, dict) else {}).get(
                "retryAfterSeconds"
            )
        except (TypeError, ValueError, AttributeError):
            value = None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _priority_level(exc: ApiException) -> str:
    """The APF priority level that rejected a request (its UID header), if APF answered."""
    headers = exc.headers or {}
    return (headers.get(PF_PRIORITY_LEVEL_HEADER) or "") if hasattr(headers, "get") else ""


def _urllib3_timeout(timeout: float | tuple[float, float] | None) -> urllib3.Timeout | None:
    """``_request_timeout`` as the official client reads it: a total, or (connect, read)."""
    if isinstance(timeout, tuple):
        return urllib3.Timeout(connect=timeout[0], read=timeout[1])
    return urllib3.Timeout(total=timeout) if timeout else None


class Cluster:
    """Operations on the sites in one namespace.

    Thread-safe: a wave patches sites from a thread pool sharing one Cluster.
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        namespace: str,
        qps: float = 50.0,
        burst: int = 100,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.api_client = api_client
        self.namespace = namespace
        self.limiter = AdaptiveRateLimiter(qps, burst)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._streams: set[Any] = set()  # open watch responses (closed by close_watches)
        self._streams_lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        *,
        namespace: str,
        kubeconfig: str = "",
        context: str = "",
        in_cluster: bool = False,
        qps: float = 50.0,
        burst: int = 100,
        pool_size: int = 16,
        retry: RetryPolicy | None = None,
    ) -> Cluster:
        """Build a Cluster from a kubeconfig path, or the Pod's ServiceAccount in-cluster."""
        configuration = Configuration()
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(
                config_file=kubeconfig or None,
                context=context or None,
                client_configuration=configuration,
            )
        # One connection per concurrent caller, plus one for the site watch (cluster.watch).
        configuration.connection_pool_maxsize = max(pool_size, 4) + 1
        # Retries are ours (bounded, Retry-After aware); urllib3's would double them.
        configuration.retries = False
        # Pin the proxy the client resolved from the environment for this host (its pool is
        # built from it once, below). Left "from env", the auth-refresh hook's re-assignment
        # of ``host`` on every request re-reads the whole environment (``getproxies``): the
        # largest CPU cost of a PATCH, for a value the pool never looks at again.
        configuration.proxy = configuration.proxy
        return cls(ApiClient(configuration), namespace=namespace, qps=qps, burst=burst, retry=retry)

    @classmethod
    def from_settings(cls, *, qps: float | None = None) -> Cluster:
        """The Cluster the settings describe; ``qps`` overrides ``KUBE_QPS`` (0 = no limit),
        with a burst of at least one second's worth of it."""
        from django.conf import settings

        rate = settings.KUBE_QPS if qps is None else qps
        return cls.connect(
            namespace=settings.SITES_NAMESPACE,
            kubeconfig=settings.KUBECONFIG,
            context=settings.KUBE_CONTEXT,
            in_cluster=settings.KUBE_IN_CLUSTER,
            qps=rate,
            burst=max(settings.KUBE_BURST, int(rate)),
            pool_size=settings.KUBE_CONCURRENCY,
        )

    # --- the call wrapper -------------------------------------------------------------------

    def _call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        before_retry: Callable[[], T | None] | None = None,
    ) -> T:
        """Run one API call with rate limiting and bounded retries.

        ``before_retry`` runs before each retry of a write; if it returns a value, the write is
        known to have been applied already and that value is returned instead of writing again.
        """
        policy = self.retry
        delay = policy.base_delay
        for attempt in range(1, policy.attempts + 1):
            self.limiter.acquire()
            try:
                return fn()
            except ApiException as exc:
                message, reason = _error_message(exc)
                if exc.status not in RETRYABLE_STATUSES or attempt == policy.attempts:
                    raise ClusterError(
                        f"{what}: {message}", status=exc.status, reason=reason
                    ) from None
                wait = _retry_after(exc) if exc.status == 429 else None
                wait = min(wait, policy.max_retry_after) if wait is not None else delay
                if exc.status == 429:
                    # Throttled: every caller pauses and the rate halves (the limiter).
                    paused = self.limiter.throttled(wait)
                    logger.info(
                        "%s: throttled (HTTP 429%s), pausing %.1fs, rate now %.1f/s",
                        what,
                        f", priority level {level}" if (level := _priority_level(exc)) else "",
                        wait,
                        self.limiter.qps,
                    )
                    if paused:  # the next ``acquire`` waits the pause out
                        wait = 0.0
                else:
                    logger.info("%s: HTTP %s, retrying in %.1fs", what, exc.status, wait)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if attempt == policy.attempts:
                    raise ClusterError(f"{what}: no answer from the API server ({exc})") from None
                wait = delay
                logger.info("%s: %s, retrying in %.1fs", what, type(exc).__name__, wait)
            if wait:
                self._sleep(wait)
            delay = min(delay * 2, policy.max_delay)
            if before_retry is not None:
                already = before_retry()
                if already is not None:
                    return already
        raise AssertionError("unreachable")

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        return json.loads(response.data)

    def _request(
        self,
        method: str,
        path: str,
        path_params: dict[str, str],
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> Any:
        """One raw API request, authenticated and sent by the official client's own parts.

        What ``ApiClient.param_serialize`` and ``call_api`` do for a JSON request, without
        their generic machinery (a recursive walk of every body for model objects, which we
        never send, and content-type regexes per call: a tenth of a PATCH's CPU): the client's
        default headers and cookie, its auth (``update_params_for_auth``, which refreshes an
        exec or OIDC token), its path quoting and query encoding, and its urllib3 PoolManager
        (TLS, proxy, pool size). A non-2xx answer raises the same ``ApiException``. Returns the
        urllib3 response (read it with ``_json``).
        """
        api = self.api_client
        config = api.configuration
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        headers.update(api.default_headers)
        if api.cookie:
            headers["Cookie"] = api.cookie
        for key, value in path_params.items():
            path = path.replace(
                f"{{{key}}}", quote(str(value), safe=config.safe_chars_for_path_param)
            )
        params = list(query or [])
        api.update_params_for_auth(headers, params, ["BearerToken"], path, method, body)
        url = config.host + path
        if params:
            url += "?" + api.parameters_to_url_query(params, None)
        response = api.rest_client.pool_manager.request(
            method,
            url,
            body=None if body is None else json.dumps(body),
            headers=headers,
            timeout=_urllib3_timeout(timeout),
            preload_content=False,
        )
        if not 200 <= response.status <= 299:
            answer = RESTResponse(response)
            answer.read()
            raise ApiException.from_response(http_resp=answer, body=None, data=None)
        return response

    # --- sites --------------------------------------------------------------------------------

    def ensure_namespace(self) -> None:
        """Create the sites namespace if it is missing (demo and tests; prod creates it once)."""
        try:
            self._call(
                f"read namespace {self.namespace}",
                lambda: self._request("GET", NAMESPACE_PATH, {"name": self.namespace}),
            )
        except ClusterError as exc:
            if not exc.not_found:
                raise
            body = {"metadata": {"name": self.namespace}}
            self._call(
                f"create namespace {self.namespace}",
                lambda: self._request("POST", NAMESPACES_PATH, {}, body=body),
            )

    def ensure_secret(self, manifest: dict[str, Any]) -> bool:
        """Create the site's Secret once; an existing one is left untouched (never rotated).

        Returns True if it was created now.
        """
        name = manifest["metadata"]["name"]
        try:
            self._call(
                f"create secret {name}",
                lambda: self._request(
                    "POST",
                    SECRETS_PATH,
                    {"namespace": self.namespace},
                    query=[("fieldManager", FIELD_MANAGER)],
                    body=manifest,
                ),
            )
        except ClusterError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply one object (field manager ``subscribie-admin``); returns it."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        path = OBJECT_PATHS[kind]
        return self._json(
            self._call(
                f"apply {kind.lower()} {name}",
                lambda: self._request(
                    "PATCH",
                    path,
                    {"namespace": self.namespace, "name": name},
                    query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                    body=manifest,
                    content_type="application/apply-patch+yaml",
                ),
            )
        )

    def apply_site(self, manifests: Iterable[dict[str, Any]]) -> int:
        """Apply a site's objects; returns the Deployment's ``metadata.generation``.

        Applying the same manifests twice changes nothing (server-side apply is idempotent),
        which is what makes the deploy job safe to run twice.
        """
        generation = 0
        for manifest in manifests:
            applied = self.apply(manifest)
            if manifest["kind"] == "Deployment":
                generation = int(applied["metadata"].get("generation", 0))
        return generation

    def read_deployment(self, name: str) -> dict[str, Any] | None:
        try:
            return self._json(
                self._call(
                    f"read deployment {name}",
                    lambda: self._request(
                        "GET", DEPLOYMENT_PATH, {"namespace": self.namespace, "name": name}
                    ),
                )
            )
        except ClusterError as exc:
            if exc.not_found:
                return None
            raise

    def read_site(self, slug: str) -> DeploymentSnapshot | None:
        deployment = self.read_deployment(slug)
        return snapshot(deployment) if deployment is not None else None

    def set_image(
        self, slug: str, image: str, *, change_cause: str, dry_run: bool = False
    ) -> DeploymentSnapshot:
        """Strategic-merge patch container ``subscribie`` to ``image``; returns the result.

        The returned snapshot's ``generation`` is what a status read must have observed before
        it may call this change rolled out.
        """
        body = {
            "metadata": {"annotations": {"kubernetes.io/change-cause": change_cause}},
            "spec": {
                "template": {"spec": {"containers": [{"name": CONTAINER_NAME, "image": image}]}}
            },
        }

        def already_applied() -> DeploymentSnapshot | None:
            if dry_run:
                return None
            current = self.read_site(slug)
            return current if current is not None and current.image == image else None

        query = [("dryRun", "All")] if dry_run else []
        query.append(("fieldManager", FIELD_MANAGER))

        def patch() -> DeploymentSnapshot:
            # ``apps.patch_namespaced_deployment``'s request, without its per-call overhead.
            response = self._request(
                "PATCH",
                DEPLOYMENT_PATH,
                {"namespace": self.namespace, "name": slug},
                query=query,
                body=body,
                content_type="application/strategic-merge-patch+json",
            )
            return snapshot(decode_deployment(response.data))

        return self._call(f"set image of {slug}", patch, before_retry=already_applied)

    def scale_site(self, slug: str, replicas: int) -> int:
        """Set the site's replica count (suspend = 0); returns the generation."""
        body = {"spec": {"replicas": replicas}}
        response = self._call(
            f"scale {slug} to {replicas}",
            lambda: self._request(
                "PATCH",
                DEPLOYMENT_PATH,
                {"namespace": self.namespace, "name": slug},
                query=[("fieldManager", FIELD_MANAGER)],
                body=body,
                content_type="application/merge-patch+json",
            ),
        )
        return int(self._json(response)["metadata"].get("generation", 0))

    def delete_site(self, slug: str) -> None:
        """Delete every object of the site (missing ones are fine: deleting is idempotent)."""
        objects = (
            ("Ingress", slug),
            ("Service", slug),
            ("Deployment", slug),
            ("Secret", f"{slug}-secrets"),
        )
        for kind, name in objects:
            try:
                self._call(
                    f"delete {name}",
                    lambda kind=kind, name=name: self._request(
                        "DELETE",
                        OBJECT_PATHS[kind],
                        {"namespace": self.namespace, "name": name},
                        query=[("propagationPolicy", "Background")],
                    ),
                )
            except ClusterError as exc:
                if not exc.not_found:
                    raise

    def _list_deployments(self, selector: str) -> Iterator[dict[str, Any]]:
        """One paged LIST (``limit``/``continue``) of Deployments matching ``selector``, each
        decoded as the gate reads it (``cluster.wire``)."""
        token: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("continue", token)] if token else []
            query += [("labelSelector", selector), ("limit", LIST_PAGE_SIZE)]
            items, metadata = decode_deployment_list(
                self._call(
                    "list deployments",
                    # ``apps.list_namespaced_deployment``'s request.
                    lambda query=query: self._request(
                        "GET", DEPLOYMENTS_PATH, {"namespace": self.namespace}, query=query
                    ),
                ).data
            )
            yield from items
            token = metadata.get("continue")
            if not token:
                return

    def list_sites(
        self,
        slugs: Iterable[str] | None = None,
        *,
        expected_generations: dict[str, int] | None = None,
    ) -> dict[str, DeploymentSnapshot]:
        """Snapshots of site Deployments by slug: all of them, or just ``slugs``.

        All sites: one paged LIST of ``subscribie=site``. Given slugs: one LIST per chunk of
        ``SELECTOR_CHUNK`` names (``subscribie-site in (...)``), never one GET per site.
        ``expected_generations`` makes a status from before our patch read as in progress.
        """
        expected = expected_generations or {}
        if slugs is None:
            selectors = [SITE_SELECTOR]
        else:
            names = sorted(set(slugs))
            if not names:
                return {}
            selectors = [
                f"{SITE_NAME_LABEL} in ({','.join(names[i : i + SELECTOR_CHUNK])})"
                for i in range(0, len(names), SELECTOR_CHUNK)
            ]
        result: dict[str, DeploymentSnapshot] = {}
        for selector in selectors:
            for item in self._list_deployments(selector):
                metadata = item.get("metadata") or {}
                slug = (metadata.get("labels") or {}).get(SITE_NAME_LABEL) or metadata["name"]
                result[slug] = snapshot(item, expected_generation=expected.get(slug))
        return result

    # --- watch (cluster.watch.SiteWatch) ------------------------------------------------------

    def list_site_deployments(self) -> tuple[list[dict[str, Any]], str]:
        """Every site Deployment (decoded as the gate reads it: ``cluster.wire``) and the
        LIST's ``resourceVersion``, in one call whatever the fleet size.

        ``resourceVersion=0`` and no ``limit``, as client-go's informers start a watch: the API
        server answers from its watch cache (no quorum read of etcd, no pages) with a recent
        version rather than the latest. That is enough for a watch's cache: the watch resumed
        from the version the LIST names replays whatever changed since, and the gate reads a
        status as done only once it has observed the generation our PATCH returned.
        """
        query: list[tuple[str, Any]] = [("labelSelector", SITE_SELECTOR), ("resourceVersion", "0")]
        items, metadata = decode_deployment_list(
            self._call(
                "list deployments",
                lambda: self._request(
                    "GET", DEPLOYMENTS_PATH, {"namespace": self.namespace}, query=query
                ),
            ).data
        )
        return items, str(metadata.get("resourceVersion") or "")

    def watch_deployments(
        self, resource_version: str, *, timeout_seconds: int = 290, raw: bool = False
    ) -> Iterator[Any]:
        """Watch events of the site Deployments after ``resource_version``: decoded dicts, or
        with ``raw`` each event's JSON line undecoded (the caller decodes what it reads).

        Bookmarks are asked for, so a quiet watch still advances its resourceVersion. A 410
        (resourceVersion too old) raises ``ClusterError(status=410)``; a stream cut mid-way
        raises ``ClusterError`` with no status; the server ending the watch just ends it.
        """
        query: list[tuple[str, Any]] = [
            ("labelSelector", SITE_SELECTOR),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", timeout_seconds),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        response = self._call(
            "watch deployments",
            lambda: self._request(
                "GET",
                DEPLOYMENTS_PATH,
                {"namespace": self.namespace},
                query=query,
                timeout=(10.0, timeout_seconds + 30.0),
            ),
        )
        with self._streams_lock:
            self._streams.add(response)
        try:
            buffer = b""
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield line if raw else json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise ClusterError(f"watch deployments: stream cut ({exc})") from None
        finally:
            with self._streams_lock:
                self._streams.discard(response)
            response.release_conn()

    def close_watches(self) -> None:
        """End every open watch stream now (a blocked read returns)."""
        with self._streams_lock:
            streams = list(self._streams)
        for response in streams:
            shutdown = getattr(response, "shutdown", None)
            with contextlib.suppress(OSError):
                (shutdown or response.close)()
