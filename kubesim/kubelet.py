"""The pod subresources a kubelet serves: ``log``, ``exec``, ``attach`` and ``portforward``.

kubesim's node (``kubesim-node``, see kubesim/bootstrap.py) runs no kubelet and no container
runtime. kube-apiserver answers these requests in two steps, and kubesim follows both:

1. Its own checks (``pkg/registry/core/pod/strategy.go``: ``LogLocation``, ``streamLocation``,
   ``validateContainer``; ``pkg/kubelet/client``: ``GetConnectionInfo``): a missing pod is 404
   ``pods "x" not found``; an unknown or unnamed container is 400; a pod with no node is 400
   ``pod x does not have a host assigned`` (exec, attach, port-forward) or an empty 204 (log);
   a pod whose Node object is gone is 404 ``nodes "n" not found``.
2. It dials the node's kubelet, and that fails. How the failure shows depends on the request
   (kubectl 1.37 was checked against a real v1.37.2 control plane with a kwok node):

   * exec or attach over a WebSocket offering ``v5.channel.k8s.io`` (kubectl's default): the
     ``StreamTranslatorHandler`` upgrades the WebSocket first, then its SPDY dial fails and it
     writes an ``InternalError`` Status on the error channel; kubectl prints ``error: Internal
     error occurred: error sending request: Post "https://<node>:10250/exec/...": ...``;
   * anything else that asks for an upgrade (SPDY, older WebSocket protocols, port-forward's
     tunnel): ``UpgradeAwareHandler``'s dial fails with ``error dialing backend: ...``, a 500
     ``Status`` with no reason (``StatusReasonUnknown``); kubectl falls back from WebSocket to
     SPDY and prints ``error: unable to upgrade connection: <message>``;
   * a request that asks for no upgrade: 400 ``Upgrade request required``.

   kubesim answers each the same way, with "kubesim runs no containers" as the dial error.

``log`` is the exception, by choice. A real server whose node has no kubelet answers 500
``Get "https://<node>:10250/containerLogs/...": dial tcp ...`` (no reason). But kubesim reports
its containers as running (their status says ``state.running``), and for a running container
a real server answers 200 ``text/plain``. So kubesim stands in for the kubelet's log endpoint
and answers one plain-text line saying there is no output because kubesim runs no containers,
instead of an error that would contradict the pod's own status (and fail ``kubectl logs
deploy/x`` in scripts). The
kubelet's own refusals (``validateContainerLogStatus``) are kept: a container not started yet
is 400 ``container "c" in pod "p" is waiting to start: ContainerCreating``, and ``previous``
without a terminated attempt is 400 ``previous terminated container "c" in pod "p" not found``.
``follow=true`` ends after the line (a real kubelet would hold the stream open).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from .errors import ApiError, bad_request, invalid, not_found

NO_RUNTIME = "kubesim runs no containers"
SUBRESOURCES = ("log", "exec", "attach", "portforward")
_WHAT = {
    "exec": "exec into",
    "attach": "attach to",
    "portforward": "forward ports of",
}

Obj = dict[str, Any]


def _container_names(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    names: list[str] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        names += [str(c.get("name")) for c in spec.get(key) or [] if isinstance(c, dict)]
    return names


def validate_container(pod: Obj, container: str | None) -> str:
    """``validateContainer``: the container a request is about, or 400 Bad Request."""
    name = pod["metadata"]["name"]
    containers = (pod.get("spec") or {}).get("containers") or []
    if not container:
        if len(containers) == 1:
            return str(containers[0].get("name"))
        if not containers:
            raise bad_request(f"a container name must be specified for pod {name}")
        choices = " ".join(_container_names(pod))
        raise bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{choices}]"
        )
    if container not in _container_names(pod):
        raise bad_request(f"container {container} is not valid for pod {name}")
    return container


def _node_of(pod: Obj, nodes: Any) -> Obj | None:
    """The pod's Node (None if unscheduled); 404 when that Node object is gone."""
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        return None
    obj = nodes(node)
    if obj is None:
        raise not_found("nodes", "", node)
    return dict(obj)


def _is_upgrade(headers: Any) -> bool:
    connection = (headers.get("Connection") or "").lower()
    return "upgrade" in connection and bool(headers.get("Upgrade"))


def _kubelet_url(
    node: Obj, sub: str, pod: Obj, container: str | None, query: dict[str, str], commands: list[str]
) -> str:
    """Where the API server would send the request (``streamLocation``, ``streamParams``).

    The host is the node's preferred address (the API server's default
    ``--kubelet-preferred-address-types`` puts Hostname first), the port its kubelet endpoint.
    """
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = next(
        (
            addresses[t]
            for t in ("Hostname", "InternalDNS", "InternalIP", "ExternalDNS", "ExternalIP")
            if addresses.get(t)
        ),
        node["metadata"]["name"],
    )
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port", 10250)
    meta = pod["metadata"]
    if sub == "portforward":
        return f"https://{host}:{port}/portForward/{meta.get('namespace', '')}/{meta['name']}"
    truthy = ("true", "1", "True")
    params = []
    if sub == "exec":
        params += [("command", c) for c in commands]
    for flag, param in (
        ("stderr", "error"),
        ("stdin", "input"),
        ("stdout", "output"),
        ("tty", "tty"),
    ):
        if query.get(flag) in truthy:
            params.append((param, "1"))
    params.sort(key=lambda kv: kv[0])  # url.Values.Encode sorts by key
    path = f"/{sub}/{meta.get('namespace', '')}/{meta['name']}/{container}"
    return f"https://{host}:{port}{path}" + (f"?{urlencode(params)}" if params else "")


def _no_kubelet(node: Obj) -> str:
    return f'{NO_RUNTIME}: node "{node["metadata"]["name"]}" has no kubelet or container runtime'


def connect(
    pod: Obj,
    sub: str,
    query: dict[str, str],
    headers: Any,
    nodes: Any,
    commands: list[str] | None = None,
) -> bytes:
    """The answer to pods/exec, attach or portforward on kubesim's node.

    Raises the ApiError a real server answers. The one success: an exec or attach WebSocket
    asking for ``v5.channel.k8s.io`` is what kube-apiserver's ``StreamTranslatorHandler``
    takes: it upgrades the client first, then dials the kubelet over SPDY, and reports the
    failure on the error channel as an ``InternalError`` Status (kubectl prints ``error:
    Internal error occurred: error sending request: Post "https://<node>:10250/exec/...":
    ...``). Those raw response bytes (101, frames, close) are returned.
    """
    name = pod["metadata"]["name"]
    container = None
    if sub in ("exec", "attach"):
        container = validate_container(pod, query.get("container"))
    node = _node_of(pod, nodes)
    if node is None:
        raise bad_request(f"pod {name} does not have a host assigned")
    if sub in ("exec", "attach") and _wants_v5_websocket(headers):
        url = _kubelet_url(node, sub, pod, container, query, commands or [])
        cause = f'error sending request: Post "{url}": {_no_kubelet(node)}'
        return _websocket_status(headers, query, cause)
    if not _is_upgrade(headers):
        raise bad_request("Upgrade request required")
    target = f'container "{container}" of pod' if container else "pod"
    where = f'"{pod["metadata"].get("namespace", "")}/{name}"'
    raise ApiError(
        500,
        "",
        f"error dialing backend: {_no_kubelet(node)} to {_WHAT[sub]} {target} {where}",
    )


# -- the WebSocket side of StreamTranslatorHandler (RFC 6455, remotecommand v5) ----------------
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_V5 = "v5.channel.k8s.io"
_STDOUT, _STDERR, _ERROR = 1, 2, 3


def _wants_v5_websocket(headers: Any) -> bool:
    if (headers.get("Upgrade") or "").lower() != "websocket" or not headers.get(
        "Sec-WebSocket-Key"
    ):
        return False
    protocols = [p.strip() for p in (headers.get("Sec-WebSocket-Protocol") or "").split(",")]
    return _V5 in protocols


def _frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked (server-to-client) frame with FIN set."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


def _websocket_status(headers: Any, query: dict[str, str], cause: str) -> bytes:
    key = headers.get("Sec-WebSocket-Key") or ""
    accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
    handshake = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n"
        f"Sec-WebSocket-Protocol: {_V5}\r\n\r\n"
    ).encode()
    truthy = ("true", "1", "True")
    # An empty message on the lowest writable channel says the connection is up.
    first = (
        _STDOUT
        if query.get("stdout") in truthy
        else _STDERR
        if query.get("stderr") in truthy
        else _ERROR
    )
    status = {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {cause}",
        "reason": "InternalError",
        "details": {"causes": [{"message": cause}]},
        "code": 500,
    }
    body = json.dumps(status, separators=(",", ":")).encode()
    return (
        handshake
        + _frame(0x2, bytes([first]))
        + _frame(0x2, bytes([_ERROR]) + body)
        + _frame(0x8, (1000).to_bytes(2, "big"))
    )


def _int_param(query: dict[str, str], key: str) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(
            f'invalid value for {key}: strconv.ParseInt: parsing "{raw}": invalid syntax'
        ) from None


def _started_at(status: Obj) -> float | None:
    for state in (status.get("state") or {}, (status.get("lastState") or {})):
        for phase in ("running", "terminated"):
            at = (state.get(phase) or {}).get("startedAt")
            if at:
                try:
                    return datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp()
                except ValueError:
                    return None
    return None


def log_response(pod: Obj, query: dict[str, str], nodes: Any) -> tuple[int, bytes]:
    """(status code, text/plain body) for GET pods/{name}/log; raises ApiError on refusals."""
    name = pod["metadata"]["name"]
    tail = _int_param(query, "tailLines")
    limit = _int_param(query, "limitBytes")
    since = _int_param(query, "sinceSeconds")
    causes = []
    if tail is not None and tail < 0:
        causes.append(
            (
                "FieldValueInvalid",
                "tailLines",
                f"Invalid value: {tail}: must be greater than or equal to 0",
            )
        )
    if limit is not None and limit < 1:
        causes.append(
            ("FieldValueInvalid", "limitBytes", f"Invalid value: {limit}: must be greater than 0")
        )
    if since is not None and since < 1:
        causes.append(
            ("FieldValueInvalid", "sinceSeconds", f"Invalid value: {since}: must be greater than 0")
        )
    if causes:
        raise invalid("PodLogOptions", "", name, causes)
    container = validate_container(pod, query.get("container"))
    if _node_of(pod, nodes) is None:
        return 204, b""  # no host: the API server streams nothing
    status = next(
        (
            s
            for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
            for s in (pod.get("status") or {}).get(key) or []
            if s.get("name") == container
        ),
        None,
    )
    state = (status or {}).get("state") or {}
    last = ((status or {}).get("lastState") or {}).get("terminated")
    previous = query.get("previous") in ("true", "1", "True")
    if previous and not last:
        raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
    if status is None or (not state.get("running") and not state.get("terminated") and not last):
        reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
        raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    image = status.get("image") or ""
    started = _started_at(status)
    if since is not None and started is not None and started < time.time() - since:
        return 200, b""
    line = (
        f'{NO_RUNTIME}, so container "{container}" (image {image}) of pod '
        f'"{pod["metadata"].get("namespace", "")}/{name}" has written no output\n'
    )
    if query.get("timestamps") in ("true", "1", "True"):
        at = datetime.fromtimestamp(started if started is not None else time.time(), UTC)
        line = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond * 1000:09d}Z " + line
    body = b"" if tail == 0 else line.encode()
    if limit is not None:
        body = body[:limit]
    return 200, body
