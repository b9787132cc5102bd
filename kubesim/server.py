"""HTTP transport: URL routing, content negotiation, watch streaming and the /kubesim hooks.

Built on ``http.server.ThreadingHTTPServer`` (one thread per keep-alive connection) with
HTTP/1.1, TCP_NODELAY and single-write responses, which is what makes small PATCHes fast.
List bodies are assembled from per-object cached JSON, so a 5,000-item list costs a join.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import yaml

from . import authentication, authorization, discovery, kubelet, openapi, protobuf, rbac, tables
from .api import PATCH_TYPES, now_iso
from .errors import ApiError, bad_request, method_not_allowed, not_found, unsupported_media_type
from .hooks import WRITE_VERBS
from .resources import BY_GV, NODES, PODS, SERVICEACCOUNTS, ResourceType
from .selectors import label_matcher, parse_field_selector, parse_label_selector
from .store import Event, dumps, loads

if TYPE_CHECKING:
    from .sim import KubeSim

_TRUE = ("true", "1", "True")
RBAC_GROUP = "rbac.authorization.k8s.io"
_REASONS = {
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
    409: "Conflict",
    404: "NotFound",
    403: "Forbidden",
    401: "Unauthorized",
}


def query_hash(path: str) -> str:
    values = parse_qs(urlsplit(path).query).get("hash")
    return values[-1] if values else ""


# What a real API server with Priority and Fairness sends (the UIDs of the default
# "global-default" flow schema and priority level are cluster-specific; these are fixed).
PF_REJECTION_HEADERS = {
    "X-Kubernetes-PF-FlowSchema-UID": "8e7f1b7e-0f0c-4d3e-9a51-5c6a1b2f0001",
    "X-Kubernetes-PF-PriorityLevel-UID": "8e7f1b7e-0f0c-4d3e-9a51-5c6a1b2f0002",
}


class Route:
    """A parsed Kubernetes resource URL."""

    __slots__ = ("name", "namespace", "rt", "subresource")

    def __init__(
        self, rt: ResourceType, namespace: str | None, name: str | None, subresource: str | None
    ) -> None:
        self.rt, self.namespace, self.name, self.subresource = rt, namespace, name, subresource


def parse_route(parts: list[str]) -> Route | None:
    """``parts`` is the path split on ``/`` without empties; None when not a resource URL."""
    if len(parts) >= 2 and parts[0] == "api":
        gv, rest = ("", parts[1]), parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        gv, rest = (parts[1], parts[2]), parts[3:]
    else:
        return None
    types = BY_GV.get(gv)
    if not types or not rest:
        return None
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and rest[2] in types
        and types[rest[2]].namespaced
    ):
        rt = types[rest[2]]
        tail = rest[3:]
        if len(tail) > 2:
            return None
        return Route(rt, rest[1], tail[0] if tail else None, tail[1] if len(tail) > 1 else None)
    rt = types.get(rest[0])
    if rt is None or len(rest) > 3:
        return None
    return Route(rt, None, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)


class KubeHTTPServer(ThreadingHTTPServer):
    """Tracks its open connections, so a restart can drop them as a dying server would."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], sim: KubeSim) -> None:
        self.sim = sim
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> int:
        """Reset every open client connection (keep-alive, in-flight, watch); returns how many."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        return len(connections)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: KubeHTTPServer
    server_version = "kubesim"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length:
            return self.rfile.read(int(length))
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _send(
        self,
        code: int,
        body: bytes,
        ctype: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        if self._protobuf_out and ctype == "application/json":
            # A client that accepts only protobuf (kubesim/protobuf.py); everything kubesim
            # answers is JSON first, so this path alone pays for the conversion. Cleared
            # first: an error raised by the conversion itself goes out as JSON.
            self._protobuf_out = False
            body, ctype = protobuf.encode_json(body), protobuf.MEDIA_TYPE
        head = [f"HTTP/1.1 {code} {self.responses.get(code, ('',))[0]}"]
        if ctype:  # a 204 No Content has no body, so no type either
            head.append(f"Content-Type: {ctype}")
        head.append(f"Content-Length: {len(body)}")
        if headers:
            head += [f"{k}: {v}" for k, v in headers.items()]
        if self._warning:
            head.append(f"Warning: {self._warning}")
        if self.close_connection:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        self._sent = True

    def _send_json(self, code: int, obj: Any) -> None:
        self._send(code, dumps(obj))

    def _send_error(self, err: ApiError) -> None:
        self._send(err.code, dumps(err.status()), headers=err.headers)

    def _dispatch(self, method: str) -> None:
        self._sent = False
        self._warning = ""
        self._protobuf_out = False
        try:
            body = self._read_body()
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            parts = [p for p in url.path.split("/") if p]
            if parts and parts[0] == "kubesim":
                self._hooks(method, parts[1:], query, body)
            else:
                route = parse_route(parts)
                if route is None:
                    self._non_resource(method, url.path, parts)
                else:
                    self._resource(method, route, query, body)
        except ApiError as e:
            if not self._sent:
                self._send_error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # report, never kill the connection thread silently
            traceback.print_exc()
            if not self._sent:
                self._send_error(ApiError(500, "InternalError", f"Internal error occurred: {e!r}"))

    # -- non-resource endpoints --------------------------------------------------------------------
    def _non_resource(self, method: str, path: str, parts: list[str]) -> None:
        # Who asks is checked (a stale token gets 401), what they ask is not: every path served
        # here is one the bootstrap policy lets any authenticated user read (system:discovery).
        self._user()
        if method != "GET":
            raise not_found("", "", path)
        host = f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        doc: Any = None
        if parts in (["version"],):
            doc = discovery.SERVER_VERSION
        elif parts and parts[0] in ("healthz", "livez", "readyz"):
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return
        elif parts == ["api"]:
            doc = discovery.api_versions(host)
        elif parts == ["apis"]:
            doc = discovery.api_group_list()
        elif len(parts) == 2 and parts[0] == "api":
            doc = discovery.resource_list("", parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = discovery.resource_list(parts[1], parts[2])
        elif parts == ["openapi", "v2"]:
            accept = (self.headers.get("Accept") or "*/*").lower()
            spec = openapi.v2_bytes()
            if spec is not None and ("json" in accept or "*/*" in accept):
                self._send(200, spec)
                return
        elif parts == ["openapi", "v3"]:
            doc = openapi.root()
        elif parts[:2] == ["openapi", "v3"] and len(parts) >= 4:
            group, version = (
                ("", parts[3])
                if parts[2] == "api"
                else (parts[3], parts[4] if len(parts) > 4 else "")
            )
            served = openapi.group_version_bytes(group, version)
            if served is not None:
                data, digest = served
                immutable = query_hash(self.path) == digest
                self._send(
                    200,
                    data,
                    headers={
                        "Etag": f'"{digest}"',
                        "Cache-Control": "public, immutable" if immutable else "no-cache, private",
                    },
                )
                return
            doc = openapi.group_version(group, version)
        if doc is None:
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        self._send_json(200, doc)

    # -- Kubernetes resources --------------------------------------------------------------------
    def _resource(self, method: str, route: Route, query: dict[str, str], body: bytes) -> None:
        sim = self.server.sim
        rt, ns, name, sub = route.rt, route.namespace, route.name, route.subresource
        if rt.deprecation:
            self._warning = f'299 - "{rt.deprecation}"'
        accept = self.headers.get("Accept")
        if accept and "protobuf" in accept:
            self._protobuf_out = protobuf.accepts_only_protobuf(accept)
        if rt.namespaced is False and ns is not None:
            raise not_found(rt.plural, rt.group, name or "")
        if sub is not None and sub not in rt.subresources:
            raise not_found(rt.plural, rt.group, name or "")
        watch = query.get("watch") in _TRUE
        verb = {
            "GET": "get" if name else ("watch" if watch else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
        if body and method != "PATCH" and "protobuf" in (self.headers.get("Content-Type") or ""):
            # kubectl's generator commands (``kubectl create deployment``, ``auth can-i``) send
            # protobuf: decoded into the JSON the rest of kubesim reads (kubesim/protobuf.py).
            # A PATCH has no protobuf form; its media-type check below answers 415.
            body = dumps(protobuf.decode(body))
        connect = rt is PODS and sub in kubelet.SUBRESOURCES
        token = rt is SERVICEACCOUNTS and sub == "token"
        if connect:
            # GET pods/x/log; GET or POST (the SPDY and WebSocket upgrades) for the others.
            allowed = ("GET",) if sub == "log" else ("GET", "POST")
            if method not in allowed or not name:
                raise method_not_allowed()
            verb = "get" if method == "GET" else "create"
        elif token:
            if method != "POST" or not name:
                raise method_not_allowed()
        elif (
            (verb == "create" and name)
            or (verb in ("update", "patch") and not name)
            or (sub is None and verb not in rt.verbs)
        ):
            raise method_not_allowed()
        resource = rt.plural + (f"/{sub}" if sub else "")
        log = sim.request_log
        log.record(verb, resource, ns, name)
        user = self._user()
        if not user.privileged:
            attrs = rbac.Attributes(verb, rt.group, rt.plural, sub or "", ns or "", name or "")
            allowed, reason = rbac.authorize(user, attrs, self._bindings())
            if not allowed:
                raise rbac.forbidden(user, attrs, reason)
        journal = log.journaling and verb in WRITE_VERBS and not connect and not rt.virtual
        rule = sim.faults.take(verb, rt.plural, ns, name, sub)
        if rule is not None and rule.latency:
            time.sleep(rule.latency)
        if rule is not None and rule.drop:
            if journal:
                log.record_write(verb, resource, ns, name, applied=False, body=body)
            self._drop_connection()
            return
        if rule is not None and rule.status and not rule.after_write:
            if journal:
                log.record_write(verb, resource, ns, name, applied=False, body=body)
            self._send_fault(rule.status, rule.message, rule.retry_after)
            return
        if connect:
            self._pod_connect(route, query)
            return
        if token:
            account = sim.api.get(rt, ns or "", name or "")
            self._send(201, dumps(authentication.token_request(account, self._json(body))))
            return
        if rt.virtual:
            if rt.group == "authentication.k8s.io":
                review = authentication.self_subject_review(self._json(body), user.info())
            else:
                review = authorization.review(rt, self._json(body), user, self._bindings())
            self._send(201, dumps(review))
            return
        try:
            code, payload = self._perform(verb, route, query, body)
        except ApiError:
            if journal:
                log.record_write(verb, resource, ns, name, applied=False, body=body)
            raise
        if journal:
            applied = query.get("dryRun") != "All"
            log.record_write(verb, resource, ns, name, applied=applied, body=body)
        if rule is not None and rule.status and rule.after_write:
            self._send_fault(rule.status, rule.message, rule.retry_after)
            return
        if payload is not None:
            self._send(code, payload)

    def _user(self) -> rbac.User:
        """Who this request acts as (kubesim/rbac.py); 401 or 403 when that cannot be."""
        store = self.server.sim.api.store

        def service_account(namespace: str, name: str) -> dict[str, Any] | None:
            return store.get(SERVICEACCOUNTS.key, namespace, name)

        return rbac.identify(self.headers, service_account, self._bindings())

    def _bindings(self) -> rbac.Bindings:
        store = self.server.sim.api.store
        return rbac.Bindings(
            list=lambda plural, ns: store.iter(f"{plural}.{RBAC_GROUP}", ns),
            get=lambda plural, ns, name: store.get(f"{plural}.{RBAC_GROUP}", ns, name),
        )

    def _pod_connect(self, route: Route, query: dict[str, str]) -> None:
        """pods/{name}/log, exec, attach, portforward: see kubesim/kubelet.py."""
        api = self.server.sim.api
        pod = api.get(route.rt, route.namespace or "", route.name or "")
        store = api.store

        def node(name: str) -> Any:
            return store.get(NODES.key, "", name)

        if route.subresource == "log":
            code, text = kubelet.log_response(pod, query, node)
            self._send(code, text, "text/plain" if code != 204 else "")
            return
        commands = parse_qs(urlsplit(self.path).query).get("command", [])
        raw = kubelet.connect(pod, route.subresource or "", query, self.headers, node, commands)
        self.close_connection = True  # the upgraded stream ends with this response
        self.wfile.write(raw)
        self._sent = True

    def _drop_connection(self) -> None:
        """Close the connection without a response (the client sees a reset, no status)."""
        self.close_connection = True
        self._sent = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_fault(self, status: int, message: str, retry_after: int) -> None:
        reason = _REASONS.get(status, "InternalError")
        headers = {"Retry-After": str(retry_after)} if status in (429, 503) else None
        if status == 429:
            # As API Priority and Fairness rejects: it names the flow schema and priority level.
            headers = {**(headers or {}), **PF_REJECTION_HEADERS}
        details: dict[str, Any] = {"causes": [{"reason": "kubesim", "message": message}]}
        if status == 429:
            details["retryAfterSeconds"] = retry_after
        err = ApiError(status, reason, message, details, headers)
        self._send_error(err)

    def _perform(
        self, verb: str, route: Route, query: dict[str, str], body: bytes
    ) -> tuple[int, bytes | None]:
        api = self.server.sim.api
        store = api.store
        rt, ns, name, sub = route.rt, route.namespace or "", route.name, route.subresource
        dry_run = query.get("dryRun") == "All"
        manager = query.get("fieldManager") or self._default_manager()
        if verb == "get":
            if sub == "scale":
                return 200, dumps(api.get_scale(rt, ns, name or ""))
            tv = self._table_version() if sub is None else None  # a 406 comes before a 404
            obj = api.get(rt, ns, name or "")
            if tv is not None:
                return 200, tables.encode(rt, [obj], tv, query.get("includeObject"))
            return 200, store.encode(obj)
        if verb == "list":
            return 200, self._list_body(route, query)
        if verb == "watch":
            self._watch(route, query)
            return 200, None
        if verb == "create":
            obj = api.create(rt, ns, self._json(body), dry_run=dry_run, manager=manager)
            return 201, dumps(obj) if dry_run else store.encode(obj)
        if verb == "update":
            if sub == "scale":
                return 200, dumps(
                    api.write_scale(rt, ns, name or "", None, self._json(body), dry_run, manager)
                )
            obj = api.update(
                rt,
                ns,
                name or "",
                self._json(body),
                subresource=sub,
                dry_run=dry_run,
                manager=manager,
            )
            return 200, dumps(obj) if dry_run else store.encode(obj)
        if verb == "patch":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            ptype = PATCH_TYPES.get(ctype)
            if ptype is None:
                raise unsupported_media_type(ctype)
            patch = self._yaml(body) if ptype == "apply" else self._json(body)
            if sub == "scale":
                return 200, dumps(
                    api.write_scale(rt, ns, name or "", ptype, patch, dry_run, manager)
                )
            existed = store.get(rt.key, ns if rt.namespaced else "", name or "") is not None
            force = query.get("force") in _TRUE
            obj = api.patch(
                rt,
                ns,
                name or "",
                ptype,
                patch,
                subresource=sub,
                dry_run=dry_run,
                manager=manager,
                force=force,
            )
            return (200 if existed else 201), dumps(obj) if dry_run else store.encode(obj)
        if verb == "delete":
            opts = self._json(body) if body.strip() else {}
            dry_run = dry_run or "All" in (opts.get("dryRun") or [])
            propagation = query.get("propagationPolicy") or opts.get("propagationPolicy")
            if query.get("orphanDependents") in _TRUE or opts.get("orphanDependents") is True:
                propagation = "Orphan"
            obj = api.delete(
                rt,
                ns,
                name or "",
                propagation=propagation,
                dry_run=dry_run,
                preconditions=opts.get("preconditions"),
            )
            if rt.plural == "namespaces":
                return 200, dumps(obj)
            if rt.plural == "pods":
                # Pods are deleted gracefully in a real cluster, which answers with the pod.
                pod = json.loads(dumps(obj))
                pod["metadata"]["deletionTimestamp"] = now_iso()
                pod["metadata"]["deletionGracePeriodSeconds"] = 0
                return 200, dumps(pod)
            meta = obj["metadata"]
            return 200, dumps(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": meta["name"],
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": meta["uid"],
                    },
                }
            )
        if verb == "deletecollection":
            opts = self._json(body) if body.strip() else {}
            dry_run = dry_run or "All" in (opts.get("dryRun") or [])
            propagation = query.get("propagationPolicy") or opts.get("propagationPolicy")
            items = api.delete_collection(
                rt,
                route.namespace,
                query.get("labelSelector"),
                query.get("fieldSelector"),
                propagation=propagation,
                dry_run=dry_run,
            )
            return 200, self._list_bytes(
                rt, [store.encode(o) for o in items], str(store.resource_version), None, None
            )
        raise method_not_allowed()

    def _default_manager(self) -> str:
        agent = self.headers.get("User-Agent") or "unknown"
        return agent.split("/", 1)[0][:128] or "unknown"

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return loads(body or b"null")
        except ValueError as e:
            raise bad_request(f"couldn't get version/kind; json parse error: {e}") from None

    @staticmethod
    def _yaml(body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            try:
                return yaml.safe_load(body)
            except yaml.YAMLError as e:
                raise bad_request(f"error decoding YAML: {e}") from None

    def _list_body(self, route: Route, query: dict[str, str]) -> bytes:
        api = self.server.sim.api
        tv = self._table_version()
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else None
        items, rv, token, remaining = api.list(
            route.rt,
            route.namespace,
            query.get("labelSelector"),
            query.get("fieldSelector"),
            limit,
            query.get("continue") or None,
        )
        if tv is not None:
            meta: dict[str, Any] = {"resourceVersion": rv}
            if token:
                meta["continue"] = token
                if remaining is not None:
                    meta["remainingItemCount"] = remaining
            return tables.encode(route.rt, items, tv, query.get("includeObject"), meta)
        encode = api.store.encode
        return self._list_bytes(route.rt, [encode(o) for o in items], rv, token, remaining)

    def _table_version(self) -> str | None:
        """Server-side printing (kubectl get): the Table version asked for; kubesim/tables.py."""
        return tables.requested_table(self.headers.get("Accept"))

    @staticmethod
    def _list_bytes(
        rt: ResourceType, items: list[bytes], rv: str, token: str | None, remaining: int | None
    ) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": rv}
        if token:
            meta["continue"] = token
            if remaining is not None:
                meta["remainingItemCount"] = remaining
        head = dumps({"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta})
        return head[:-1] + b',"items":[' + b",".join(items) + b"]}"

    # -- watch -------------------------------------------------------------------------------------
    def _watch(self, route: Route, query: dict[str, str]) -> None:
        """Stream watch events as chunked JSON lines until timeout, cut, or client hang-up."""
        api = self.server.sim.api
        store = api.store
        rt = route.rt
        ns = route.namespace if rt.namespaced else None
        lmatch = label_matcher(parse_label_selector(query.get("labelSelector")))
        fmatch = parse_field_selector(query.get("fieldSelector"))
        bookmarks = query.get("allowWatchBookmarks") in _TRUE
        initial = query.get("sendInitialEvents") in _TRUE
        rv_param = query.get("resourceVersion") or ""
        timeout = (
            float(query["timeoutSeconds"]) if query.get("timeoutSeconds", "").isdigit() else 1800.0
        )
        deadline = time.monotonic() + timeout
        table_version = self._table_version()
        if table_version is not None:  # a bad includeObject fails before the stream starts
            include = tables.check_include_object(query.get("includeObject"))

        def matches(obj: dict[str, Any]) -> bool:
            return (lmatch is None or lmatch(obj["metadata"].get("labels") or {})) and (
                fmatch is None or fmatch(obj)
            )

        with store.lock:
            if rv_param in ("", "0") or initial:
                watcher, _ = store.watch(rt.key, ns, None)
                snapshot = [o for o in store.iter(rt.key, ns) if matches(o)]
                start_rv = store.resource_version
                backlog: list[Event] = []
            else:
                if not rv_param.isdigit():
                    raise bad_request(f"invalid resource version {rv_param!r}")
                watcher, backlog = store.watch(rt.key, ns, int(rv_param))
                snapshot = []
                start_rv = int(rv_param)
        try:
            warning = f"Warning: {self._warning}\r\n".encode() if self._warning else b""
            ctype = (
                protobuf.MEDIA_TYPE.encode() + b";stream=watch"
                if self._protobuf_out
                else b"application/json"
            )
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nTransfer-Encoding: chunked\r\n"
                b"Cache-Control: no-cache, private\r\n" + warning + b"\r\n"
            )
            self._sent = True
            last_rv = start_rv

            def emit(etype: str, data: bytes) -> None:
                line = b'{"type":"' + etype.encode() + b'","object":' + data + b"}\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")

            if table_version is not None:
                emit = tables.watch_emitter(emit, rt, table_version, include)
            elif self._protobuf_out:

                def emit(etype: str, data: bytes) -> None:
                    frame = protobuf.encode_watch_event(etype, data)
                    self.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")

            def bookmark(initial_end: bool = False) -> None:
                meta: dict[str, Any] = {"resourceVersion": str(last_rv)}
                if initial_end:
                    meta["annotations"] = {"k8s.io/initial-events-end": "true"}
                emit(
                    "BOOKMARK",
                    dumps({"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}),
                )

            for obj in snapshot:
                emit("ADDED", store.encode(obj))
            if initial and bookmarks:
                bookmark(initial_end=True)
            pending = list(backlog)
            next_bookmark = time.monotonic() + self.server.sim.bookmark_interval
            while True:
                if pending:
                    event: Event | None = pending.pop(0)
                else:
                    wait = min(deadline, next_bookmark) - time.monotonic()
                    if time.monotonic() >= deadline:
                        break
                    try:
                        event = watcher.queue.get(timeout=max(wait, 0.001))
                    except Exception:  # queue.Empty
                        if bookmarks and time.monotonic() >= next_bookmark:
                            bookmark()
                            next_bookmark = time.monotonic() + self.server.sim.bookmark_interval
                        continue
                if event is None or watcher.closed:
                    # A cut stream: drop the connection without the terminating chunk.
                    self.close_connection = True
                    return
                if event.rv <= start_rv and not backlog:
                    continue
                last_rv = event.rv
                now_match = matches(event.obj)
                was_match = event.old is not None and matches(event.old)
                etype = event.type
                if etype == "MODIFIED" and now_match and not was_match:
                    etype = "ADDED"
                elif etype == "MODIFIED" and was_match and not now_match:
                    etype = "DELETED"
                elif not now_match:
                    continue
                emit(
                    etype, dumps(event.obj) if event.type == "DELETED" else store.encode(event.obj)
                )
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            store.unwatch(watcher)

    # -- /kubesim hooks
    def _hooks(self, method: str, parts: list[str], query: dict[str, str], body: bytes) -> None:
        sim = self.server.sim
        what = parts[0] if parts else ""
        data = json.loads(body) if body.strip() else {}
        if what == "availability":
            if (method == "POST" and parts[1:] == ["reset"]) or method == "DELETE":
                sim.reset_availability()
                self._send_json(200, {"ok": True})
                return
            self._send_json(200, {"availability": sim.availability(query.get("namespace"))})
        elif what == "requests":
            if (method == "POST" and parts[1:] == ["reset"]) or method == "DELETE":
                sim.reset_requests()
                self._send_json(200, {"ok": True})
                return
            snap = sim.requests()
            self._send_json(
                200, {"total": snap.total, "requests": snap.to_list(), "times": snap.times()}
            )
        elif what == "faults":
            if method == "GET":
                self._send_json(200, {"faults": [r.to_dict() for r in sim.faults.rules()]})
            elif method == "POST" and parts[1:] == ["cut-watches"]:
                self._send_json(200, {"cut": sim.faults.cut_watches()})
            elif method == "POST" and parts[1:] == ["compact"]:
                self._send_json(200, {"compacted": sim.faults.compact()})
            elif method == "POST":
                try:
                    rule = sim.faults.add(**data)
                except (TypeError, ValueError) as e:
                    raise bad_request(str(e)) from None
                self._send_json(201, rule.to_dict())
            elif method == "DELETE" and len(parts) == 2 and parts[1].isdigit():
                sim.faults.remove(int(parts[1]))
                self._send_json(200, {"ok": True})
            elif method == "DELETE":
                sim.faults.clear()
                self._send_json(200, {"ok": True})
            else:
                raise method_not_allowed()
        elif what == "ready" and method in ("PUT", "POST") and len(parts) == 4:
            # /kubesim/ready/<namespace>/<pods|deployments>/<name> {"ready": false}
            namespace, kind, name = parts[1:]
            ready = data.get("ready")
            if not isinstance(ready, bool):
                raise bad_request('the body must be {"ready": true} or {"ready": false}')
            if kind == "pods":
                flipped = [name] if sim.set_pod_ready(namespace, name, ready) else []
            elif kind == "deployments":
                flipped = sim.set_deployment_ready(namespace, name, ready)
            else:
                raise bad_request("readiness can be set on pods or deployments")
            self._send_json(200 if flipped else 404, {"ready": ready, "pods": flipped})
        elif what == "restart" and method == "POST":
            # Answered first; the restart runs on its own thread (this one is a connection
            # of the server that is going away).
            down_for = float(data.get("downFor", 0.5))
            self._send_json(202, {"restarting": True, "downFor": down_for})
            threading.Thread(target=sim.restart, args=(down_for,), daemon=True).start()
        elif what == "config":
            if method in ("PUT", "PATCH", "POST"):
                if "readyAfter" in data:
                    sim.set_ready_after(float(data["readyAfter"]))
                if "failImages" in data:
                    sim.set_fail_images(data["failImages"])
            self._send_json(200, {"readyAfter": sim.ready_after, "failImages": sim.fail_images})
        else:
            self._send(404, b"unknown kubesim hook\n", "text/plain; charset=utf-8")
