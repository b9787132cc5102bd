"""Server-side printing: objects -> a ``meta.k8s.io`` ``Table``, as kubectl asks for it.

``kubectl get`` (human-readable output) sends
``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;
g=meta.k8s.io,application/json`` on list, get and watch requests, and prints the columns the
server defines; without a Table it falls back to NAME and AGE. The column definitions and
cell formats below follow the API server's printers (``pkg/printers/internalversion``), which
always generate the wide (priority 1) columns too; kubectl hides those unless ``-o wide``.

Like the real server, AGE (and other durations) are computed here, at response time, as
``duration.HumanDuration`` strings (``5s``, ``3m12s``, ``2d3h``); types without a printer get
the default table convertor's ``Name`` + ``Created At`` (type ``date``, RFC 3339 timestamp).

Pure functions only: nothing here touches the store or the transport.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from .errors import ApiError, bad_request
from .resources import ResourceType

Obj = dict[str, Any]
Row = list[Any]

TABLE_GROUP = "meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")
INCLUDE_OBJECT = ("Metadata", "Object", "None")

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_CREATED_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."
_NODE_ADDRESSES_DOC = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More "
    "info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is "
    "declared as mergeable, but the merge key is not sufficiently unique, which can cause data "
    "corruption when it is merged. Callers should instead use a full-replacement patch. See "
    "https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change "
    "during the lifetime of a Node. However, there are some exceptions where this may not be "
    "possible, such as Pods that inherit a Node's address in its own status or consumers of the "
    "downward API (status.hostIP)."
)


def column(
    name: str, type_: str = "string", description: str = "", priority: int = 0, fmt: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


NAME = column("Name", "string", _NAME_DOC, fmt="name")
AGE = column("Age", "string", _CREATED_DOC)


# -- Accept negotiation -----------------------------------------------------------------------
# What a real server serializes: with no acceptable clause it answers 406 with this message.
_SERVED_MEDIA = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_TRANSFORMS = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")


def not_acceptable() -> ApiError:
    return ApiError(
        406,
        "NotAcceptable",
        "only the following media types are accepted: " + ", ".join(_SERVED_MEDIA),
    )


def requested_table(accept: str | None) -> str | None:
    """See :func:`_requested_table` (memoised: clients send the same few Accept headers)."""
    if not accept:
        return None
    answer = _requested_table(accept)
    if answer == "406":
        raise not_acceptable()
    return answer


@lru_cache(maxsize=256)
def _requested_table(accept: str) -> str | None:
    """The Table apiVersion the Accept header asks for first, or None for plain objects.

    Clauses are taken in order (``NegotiateOutputMediaType``): a clause is acceptable when its
    media type is served and its ``as`` transform, if any, is one the server performs
    (``Table``, ``PartialObjectMetadata``(``List``) of ``meta.k8s.io`` ``v1``/``v1beta1``); the
    first acceptable one decides. ``as=Table`` in JSON means a Table; any other acceptable
    clause means the plain JSON object (kubesim answers JSON whatever the serializer asked
    for, and does not transform to PartialObjectMetadata). When no clause is acceptable (an
    unserved Table version, an unknown transform, only unserved media types), 406 Not
    Acceptable, as from a real server.
    """
    if not accept.strip():
        return None
    for clause in accept.split(","):
        media, _, rest = clause.partition(";")
        media = media.strip().lower()
        if media not in (*_SERVED_MEDIA, "application/*", "*/*"):
            continue
        params: dict[str, str] = {}
        for p in rest.split(";"):
            k, _, v = p.partition("=")
            if k.strip():
                params[k.strip()] = v.strip()
        kind = params.get("as")
        if kind is None:
            return None
        if kind not in _TRANSFORMS or params.get("g") != TABLE_GROUP:
            continue
        if params.get("v") not in TABLE_VERSIONS:
            continue
        if kind != "Table":
            return None
        if media in ("application/json", "application/*", "*/*"):
            return f"{TABLE_GROUP}/{params['v']}"
        # A protobuf Table: kubesim speaks JSON only, so a later JSON clause decides.
    return "406"


# -- formatting helpers (the Go printers' equivalents) -----------------------------------------
def parse_time(ts: Any) -> datetime | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds_total: float) -> str:
    """``k8s.io/apimachinery/pkg/util/duration.HumanDuration``."""
    seconds = int(seconds_total)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(ts: Any, now: datetime) -> str:
    """``translateTimestampSince``: ``<unknown>`` for a missing timestamp."""
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def format_labels(labels: dict[str, Any] | None) -> str:
    """``labels.FormatLabels``: sorted ``k=v`` pairs, ``<none>`` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_string(sel: Any) -> str:
    """``metav1.LabelSelectorAsSelector(sel).String()`` (requirements sorted by key)."""
    if not isinstance(sel, dict):
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for expr in sel.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = ",".join(sorted(str(v) for v in expr.get("values") or []))
        text = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(op)
        if text is None:
            return "<invalid>"
        reqs.append((key, text))
    return ",".join(t for _, t in sorted(reqs, key=lambda r: r[0]))


def format_label_selector(sel: Any) -> str:
    """``metav1.FormatLabelSelector``: like :func:`selector_string`, ``<none>`` when empty."""
    return selector_string(sel) or "<none>"


def containers_cells(pod_spec: Any) -> tuple[str, str]:
    """``layoutContainerCells``: comma-joined container names and images."""
    containers = (pod_spec or {}).get("containers") or []
    return (
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
    )


def _template_spec(obj: Obj) -> Any:
    return (((obj.get("spec") or {}).get("template") or {}).get("spec")) or {}


# -- per-type printers -------------------------------------------------------------------------
def _deployment(obj: Obj, now: datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = containers_cells(_template_spec(obj))
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        since(obj["metadata"].get("creationTimestamp"), now),
        names,
        images,
        selector_string(spec.get("selector")),
    ]


def _replicaset(obj: Obj, now: datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = containers_cells(_template_spec(obj))
    return [
        obj["metadata"]["name"],
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        since(obj["metadata"].get("creationTimestamp"), now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _condition_true(conditions: Iterable[Any], ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in conditions)


def _later(a: datetime | None, ts: Any) -> datetime | None:
    t = parse_time(ts)
    return t if t is not None and (a is None or t > a) else a


def _pod(obj: Obj, now: datetime) -> Row:
    """``printPod``: READY, STATUS (the aggregate reason) and RESTARTS as kubectl shows them."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    conditions = status.get("conditions") or []
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}

    def restartable(name: Any) -> bool:
        return (init_specs.get(name) or {}).get("restartPolicy") == "Always"

    total = len(spec.get("containers") or []) + sum(1 for n in init_specs if restartable(n))
    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated")
        restarts += cs.get("restartCount", 0)
        if last:
            last_restart = _later(last_restart, last.get("finishedAt"))
        if restartable(cs.get("name")):
            sidecar_restarts += cs.get("restartCount", 0)
            if last:
                last_sidecar_restart = _later(last_sidecar_restart, last.get("finishedAt"))
        term, waiting = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if restartable(cs.get("name")) and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        if term is not None:
            if term.get("reason"):
                reason = "Init:" + term["reason"]
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode', 0)}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    if not initializing or _condition_true(conditions, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated")
            restarts += cs.get("restartCount", 0)
            if last:
                last_restart = _later(last_restart, last.get("finishedAt"))
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = (
                    f"Signal:{term['signal']}"
                    if term.get("signal")
                    else f"ExitCode:{term.get('exitCode', 0)}"
                )
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"
    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"
    ips = status.get("podIPs") or []
    pod_ip = (ips[0].get("ip") if ips else None) or status.get("podIP") or "<none>"
    gates = spec.get("readinessGates") or []
    readiness = "<none>"
    if gates:
        by_type = {c.get("type"): c.get("status") for c in conditions}
        ok = sum(1 for g in gates if by_type.get(g.get("conditionType")) == "True")
        readiness = f"{ok}/{len(gates)}"
    return [
        meta["name"],
        f"{ready}/{total}",
        reason,
        restarts_cell,
        since(meta.get("creationTimestamp"), now),
        pod_ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        readiness,
    ]


def _pod_conditions(obj: Obj) -> list[dict[str, str]] | None:
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return None
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


def _lb_addresses(status: Any) -> str:
    found = set()
    for ing in ((status or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ing.get("ip"):
            found.add(ing["ip"])
        elif ing.get("hostname"):
            found.add(ing["hostname"])
    return ",".join(sorted(found))


def _service(obj: Obj, now: datetime) -> Row:
    spec = obj.get("spec") or {}
    svc_type = spec.get("type") or ""
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    external_ips = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        external = ",".join(external_ips) or "<none>"
    elif svc_type == "LoadBalancer":
        lb = _lb_addresses(obj.get("status"))
        parts = (lb.split(",") if lb else []) + list(external_ips)
        external = ",".join(parts) or "<pending>"
    elif svc_type == "ExternalName":
        external = spec.get("externalName") or ""
    else:
        external = "<unknown>"
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        node_port = p.get("nodePort") or 0
        ports.append(
            f"{p.get('port')}:{node_port}/{proto}" if node_port > 0 else f"{p.get('port')}/{proto}"
        )
    return [
        obj["metadata"]["name"],
        svc_type,
        ips[0] if ips else "<none>",
        external,
        ",".join(ports) or "<none>",
        since(obj["metadata"].get("creationTimestamp"), now),
        format_labels(spec.get("selector")),
    ]


def _ingress(obj: Obj, now: datetime) -> Row:
    spec = obj.get("spec") or {}
    rules = spec.get("rules") or []
    hosts: list[str] = []  # formatHosts: the first 3 hosts, "+ N more..." past them
    more = False
    for rule in rules:
        more = more or len(hosts) == 3
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    hosts_cell = ",".join(hosts) or "*"
    if more:
        hosts_cell = f"{hosts_cell} + {len(rules) - 3} more..."
    return [
        obj["metadata"]["name"],
        spec.get("ingressClassName") or "<none>",
        hosts_cell,
        _lb_addresses(obj.get("status")),
        "80, 443" if spec.get("tls") else "80",
        since(obj["metadata"].get("creationTimestamp"), now),
    ]


def _namespace(obj: Obj, now: datetime) -> Row:
    return [
        obj["metadata"]["name"],
        (obj.get("status") or {}).get("phase") or "",
        since(obj["metadata"].get("creationTimestamp"), now),
    ]


def _secret(obj: Obj, now: datetime) -> Row:
    return [
        obj["metadata"]["name"],
        obj.get("type") or "",
        len(obj.get("data") or {}),
        since(obj["metadata"].get("creationTimestamp"), now),
    ]


def _configmap(obj: Obj, now: datetime) -> Row:
    return [
        obj["metadata"]["name"],
        len(obj.get("data") or {}) + len(obj.get("binaryData") or {}),
        since(obj["metadata"].get("creationTimestamp"), now),
    ]


def _event(obj: Obj, now: datetime) -> Row:
    involved = obj.get("involvedObject") or {}
    first = since(obj.get("firstTimestamp"), now)
    if not obj.get("firstTimestamp"):
        first = since(obj.get("eventTime"), now)
    last = since(obj.get("lastTimestamp"), now) if obj.get("lastTimestamp") else first
    count = obj.get("count") or 0
    series = obj.get("series")
    if series:
        last = since(series.get("lastObservedTime"), now)
        count = series.get("count", 0)
    elif count == 0:
        count = 1
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    return [
        last,
        obj.get("type") or "",
        obj.get("reason") or "",
        target,
        involved.get("fieldPath") or "",
        f"{component}, {host}" if host else component,
        str(obj.get("message") or "").strip(),
        first,
        count,
        obj["metadata"]["name"],
    ]


def _node(obj: Obj, now: datetime) -> Row:
    """``printNode`` (with its wide columns, which the server always fills)."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    states = [] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    states = states or ["Unknown"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = set()
    for k, v in (meta.get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/") and k[len("node-role.kubernetes.io/") :]:
            roles.add(k[len("node-role.kubernetes.io/") :])
        elif k == "kubernetes.io/role" and v:
            roles.add(str(v))
    info = status.get("nodeInfo") or {}
    kernel = info.get("kernelVersion") or "<unknown>"
    if info.get("architecture"):
        kernel += f" ({info['architecture']})"

    def address(kind: str) -> str:
        return next(
            (a["address"] for a in status.get("addresses") or [] if a.get("type") == kind),
            "<none>",
        )

    return [
        meta["name"],
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        since(meta.get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        kernel,
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _join_host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _endpoints(obj: Obj, now: datetime) -> Row:
    """``printEndpoints``: ``formatEndpoints`` shows at most three ``ip:port``."""
    subsets = obj.get("subsets") or []
    shown: list[str] = []
    count = 0
    more = False
    for ss in subsets:
        addresses = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:
            count += len(addresses)
            for a in addresses:
                if len(shown) == 3:
                    more = True
                    break
                shown.append(str(a.get("ip", "")))
            continue
        for port in ports:
            count += len(addresses)
            for a in addresses:
                if len(shown) == 3:
                    more = True
                    break
                shown.append(_join_host_port(str(a.get("ip", "")), port.get("port")))
    text = ",".join(shown) if subsets else "<none>"
    if more:
        text = f"{text} + {count - 3} more..."
    return [obj["metadata"]["name"], text, since(obj["metadata"].get("creationTimestamp"), now)]


def _list_with_more(items: list[str], total: int) -> str:
    """``listWithMoreString`` (three at most; ``<unset>`` when empty)."""
    if total > 3:
        return ",".join(items[:3]) + f" + {total - 3} more..."
    return ",".join(items) or "<unset>"


def _endpointslice(obj: Obj, now: datetime) -> Row:
    ports = []
    for p in obj.get("ports") or []:
        port = p.get("port")
        ports.append(str(port) if port is not None else (p.get("name") or "*"))
    addresses = [str(a) for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        obj["metadata"]["name"],
        obj.get("addressType", ""),
        _list_with_more(ports, len(ports)),
        _list_with_more(addresses, len(addresses)),
        since(obj["metadata"].get("creationTimestamp"), now),
    ]


def _serviceaccount(obj: Obj, now: datetime) -> Row:
    return [obj["metadata"]["name"], since(obj["metadata"].get("creationTimestamp"), now)]


def _default(obj: Obj, now: datetime) -> Row:
    meta = obj["metadata"]
    return [meta["name"], meta.get("creationTimestamp")]


Printer = tuple[list[dict[str, Any]], Callable[[Obj, datetime], Row]]

PRINTERS: dict[str, Printer] = {
    "deployments.apps": (
        [
            NAME,
            column("Ready", "string", "Number of the pod with ready state"),
            column(
                "Up-to-date",
                "string",
                "Total number of non-terminated pods targeted by this deployment that have the "
                "desired template spec.",
            ),
            column(
                "Available",
                "string",
                "Total number of available pods (ready for at least minReadySeconds) targeted "
                "by this deployment.",
            ),
            AGE,
            column("Containers", "string", _CONTAINERS_DOC, 1),
            column("Images", "string", _IMAGES_DOC, 1),
            column("Selector", "string", "Label selector for pods.", 1),
        ],
        _deployment,
    ),
    "replicasets.apps": (
        [
            NAME,
            column("Desired", "integer", "Replicas is the number of desired replicas."),
            column(
                "Current", "integer", "Replicas is the most recently observed number of replicas."
            ),
            column("Ready", "integer", "The number of ready replicas for this replica set."),
            AGE,
            column("Containers", "string", _CONTAINERS_DOC, 1),
            column("Images", "string", _IMAGES_DOC, 1),
            column("Selector", "string", "Selector is a label query over pods.", 1),
        ],
        _replicaset,
    ),
    "pods": (
        [
            NAME,
            column(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            column("Status", "string", "The aggregate status of the containers in this pod."),
            column(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when "
                "the last container in this pod has restarted.",
            ),
            AGE,
            column("IP", "string", "podIP address allocated to the pod.", 1),
            column("Node", "string", "NodeName indicates in which node this pod is scheduled.", 1),
            column(
                "Nominated Node",
                "string",
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
                1,
            ),
            column(
                "Readiness Gates",
                "string",
                "If specified, all readiness gates will be evaluated for pod readiness.",
                1,
            ),
        ],
        _pod,
    ),
    "services": (
        [
            NAME,
            column("Type", "string", "type determines how the Service is exposed."),
            column("Cluster-IP", "string", "clusterIP is the IP address of the service."),
            column(
                "External-IP",
                "string",
                "externalIPs is a list of IP addresses for which nodes in the cluster will also "
                "accept traffic for this service.",
            ),
            column("Port(s)", "string", "The list of ports that are exposed by this service."),
            AGE,
            column(
                "Selector",
                "string",
                "Route service traffic to pods with label keys and values matching this selector.",
                1,
            ),
        ],
        _service,
    ),
    "ingresses.networking.k8s.io": (
        [
            NAME,
            column(
                "Class",
                "string",
                "The name of the IngressClass resource that should be used for additional "
                "configuration",
            ),
            column(
                "Hosts",
                "string",
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            column(
                "Address",
                "string",
                "Address is a list containing ingress points for the load-balancer",
            ),
            column("Ports", "string", "Ports of TLS configurations that open"),
            AGE,
        ],
        _ingress,
    ),
    "namespaces": (
        [NAME, column("Status", "string", "The status of the namespace"), AGE],
        _namespace,
    ),
    "secrets": (
        [
            NAME,
            column("Type", "string", "Used to facilitate programmatic handling of secret data."),
            column("Data", "string", "Data contains the secret data."),
            AGE,
        ],
        _secret,
    ),
    "configmaps": (
        [NAME, column("Data", "string", "Data contains the configuration data."), AGE],
        _configmap,
    ),
    "events": (
        [
            column(
                "Last Seen",
                "string",
                "The time at which the most recent occurrence of this event was recorded.",
            ),
            column("Type", "string", "Type of this event (Normal, Warning)."),
            column(
                "Reason",
                "string",
                "A short, machine understandable string that gives the reason for the "
                "transition into the object's current status.",
            ),
            column("Object", "string", "The object that this event is about."),
            column("Subobject", "string", "The field of the object this event is about.", 1),
            column("Source", "string", "The component reporting this event.", 1),
            column(
                "Message", "string", "A human-readable description of the status of this operation."
            ),
            column("First Seen", "string", "The time at which the event was first recorded.", 1),
            column("Count", "string", "The number of times this event has occurred.", 1),
            column("Name", "string", _NAME_DOC, 1, "name"),
        ],
        _event,
    ),
    "nodes": (
        [
            NAME,
            column("Status", "string", "The status of the node"),
            column("Roles", "string", "The roles of the node"),
            AGE,
            column("Version", "string", "Kubelet Version reported by the node."),
            column("Internal-IP", "string", _NODE_ADDRESSES_DOC, 1),
            column("External-IP", "string", _NODE_ADDRESSES_DOC, 1),
            column(
                "OS-Image",
                "string",
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 "
                "(wheezy)).",
                1,
            ),
            column(
                "Kernel-Version",
                "string",
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                1,
            ),
            column(
                "Container-Runtime",
                "string",
                "ContainerRuntime Version reported by the node through runtime remote API "
                "(e.g. containerd://1.4.2).",
                1,
            ),
        ],
        _node,
    ),
    "endpoints": (
        [
            NAME,
            column(
                "Endpoints",
                "string",
                "The set of all endpoints is the union of all subsets. Addresses are placed "
                "into subsets according to the IPs they share. A single address with multiple "
                "ports, some of which are ready and some of which are not (because they come "
                "from different containers) will result in the address being displayed in "
                "different subsets for the different ports. No address will appear in both "
                "Addresses and NotReadyAddresses in the same subset. Sets of addresses and "
                "ports that comprise a service.",
            ),
            AGE,
        ],
        _endpoints,
    ),
    "endpointslices.discovery.k8s.io": (
        [
            NAME,
            column(
                "AddressType",
                "string",
                "addressType specifies the type of address carried by this EndpointSlice. All "
                "addresses in this slice must be the same type. This field is immutable after "
                "creation. The following address types are currently supported: * IPv4: "
                "Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: "
                "Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice "
                "controller only generates, and kube-proxy only processes, slices of addressType "
                '"IPv4" and "IPv6". No semantics are defined for the "FQDN" type.',
            ),
            column(
                "Ports",
                "string",
                "ports specifies the list of network ports exposed by each endpoint in this "
                "slice. Each port must have a unique name. Each slice may include a maximum of "
                "100 ports. Services always have at least 1 port, so EndpointSlices generated "
                "by the EndpointSlice controller will likewise always have at least 1 port. "
                "EndpointSlices used for other purposes may have an empty ports list.",
            ),
            column(
                "Endpoints",
                "string",
                "endpoints is a list of unique endpoints in this slice. Each slice may include "
                "a maximum of 1000 endpoints.",
            ),
            AGE,
        ],
        _endpointslice,
    ),
    "serviceaccounts": ([NAME, AGE], _serviceaccount),
}

DEFAULT_PRINTER: Printer = (
    [NAME, column("Created At", "date", _CREATED_DOC)],
    _default,
)


def printer_for(rt: ResourceType) -> Printer:
    return PRINTERS.get(rt.key, DEFAULT_PRINTER)


# -- the Table -----------------------------------------------------------------------------------
def check_include_object(include: str | None) -> str:
    """The ``includeObject`` policy ('' means Metadata); 400 Bad Request for an unknown value."""
    include = include or "Metadata"
    if include not in INCLUDE_OBJECT:
        raise bad_request(f"unrecognized includeObject value: {include!r}")
    return include


def row_object(obj: Obj, include: str, table_version: str) -> Obj | None:
    if include == "Object":
        return obj
    if include == "None":
        return None
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": table_version,
        "metadata": obj["metadata"],
    }


def table(
    rt: ResourceType,
    objs: Iterable[Obj],
    *,
    table_version: str = f"{TABLE_GROUP}/v1",
    include_object: str | None = None,
    list_meta: dict[str, Any] | None = None,
    headers: bool = True,
    now: datetime | None = None,
) -> Obj:
    """A ``Table`` of ``objs``; ``list_meta`` is the list's (or the object's) metadata.

    ``headers=False`` omits ``columnDefinitions`` (``null``), as the server does for watch
    events after the first one.
    """
    include = check_include_object(include_object)
    columns, print_row = printer_for(rt)
    now = now or datetime.now(UTC)
    rows = []
    for obj in objs:
        row: dict[str, Any] = {
            "cells": print_row(obj, now),
            "object": row_object(obj, include, table_version),
        }
        if rt.key == "pods":
            conds = _pod_conditions(obj)
            if conds:
                row["conditions"] = conds
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": table_version,
        "metadata": dict(list_meta or {}),
        "columnDefinitions": [dict(c) for c in columns] if headers else None,
        "rows": rows,
    }


def object_table(rt: ResourceType, obj: Obj, **kw: Any) -> Obj:
    """A one-row Table for a single object (a get, or a watch event's object)."""
    rv = obj.get("metadata", {}).get("resourceVersion")
    return table(rt, [obj], list_meta={"resourceVersion": rv} if rv else {}, **kw)


def watch_emitter(
    emit: Callable[[str, bytes], None],
    rt: ResourceType,
    table_version: str,
    include_object: str | None,
) -> Callable[[str, bytes], None]:
    """Wrap a watch stream's ``emit(type, object_json)`` so each event carries a Table.

    The first event's Table has the column definitions, later ones ``null`` (the server saves
    the bandwidth; kubectl reuses the last definitions). BOOKMARK and ERROR pass through.
    """
    first = True

    def table_emit(etype: str, data: bytes) -> None:
        nonlocal first
        if etype in ("BOOKMARK", "ERROR"):
            emit(etype, data)
            return
        doc = object_table(
            rt,
            json.loads(data),
            table_version=table_version,
            include_object=include_object,
            headers=first,
        )
        first = False
        emit(etype, json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())

    return table_emit


def encode(
    rt: ResourceType,
    objs: list[Obj],
    table_version: str,
    include_object: str | None,
    list_meta: dict[str, Any] | None = None,
) -> bytes:
    """The response body: a list's Table (``list_meta`` given) or one object's Table."""
    if list_meta is None:
        doc = object_table(rt, objs[0], table_version=table_version, include_object=include_object)
    else:
        doc = table(
            rt,
            objs,
            table_version=table_version,
            include_object=include_object,
            list_meta=list_meta,
        )
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
