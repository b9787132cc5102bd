"""Kubernetes protobuf bodies <-> the JSON dicts the rest of kubesim works on.

A body of type ``application/vnd.kubernetes.protobuf`` is the 4-byte magic ``k8s\\x00`` and a
``runtime.Unknown``: ``typeMeta{apiVersion, kind}``, ``raw`` (the object's message, chosen by
apiVersion and kind), ``contentEncoding``, ``contentType``. :func:`decode` turns it into exactly
the dict that the JSON form of the same Go object is: the JSON names and flattening of the Go
struct tags (``go-fields.json``, see kubesim/protobuf_schema.py), zero scalars dropped where the
tag says ``omitempty`` (Go writes every non-pointer scalar to the wire), and the types with a
JSON form of their own: ``metav1.Time``/``MicroTime`` (RFC 3339), ``Duration``,
``resource.Quantity`` and ``intstr.IntOrString`` (strings or ints), ``runtime.RawExtension`` and
``FieldsV1`` (embedded JSON), ``[]byte`` (base64) and named slices (``Verbs``, ``ExtraValue``).
:func:`encode` is the reverse, for clients that accept only protobuf.

The schema is loaded on the first protobuf body, so JSON-only use never imports protobuf.
Without the compiled schema, :func:`decode` and :func:`encode` raise a 415 that says how to
fetch it.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from . import protobuf_schema
from .errors import ApiError, bad_request

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_TIME = f"{_META}.Time"
_MICRO_TIME = f"{_META}.MicroTime"
_DURATION = f"{_META}.Duration"
_FIELDS_V1 = f"{_META}.FieldsV1"
_QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
_RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"


@dataclass(frozen=True)
class GoField:
    """How one proto field of a Go struct appears in JSON (from its struct tag)."""

    json: str
    pointer: bool
    omit: int  # 0: always in JSON; 1: omitempty (a zero scalar is dropped); 2: omitzero
    inline: bool


class Schema:
    """The compiled descriptors in a private pool, and the Go struct tags of their messages."""

    def __init__(self, directory: Any) -> None:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

        data = (directory / protobuf_schema.DESCRIPTORS).read_bytes()
        self.pool = descriptor_pool.DescriptorPool()
        for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
            self.pool.Add(file)
        self._factory = message_factory.GetMessageClass
        raw = json.loads((directory / protobuf_schema.GO_FIELDS).read_text())
        self.go_fields: dict[str, dict[int, GoField]] = {
            message: {int(n): GoField(*spec) for n, spec in fields.items()}
            for message, fields in raw.items()
        }
        self._classes: dict[str, Any] = {}
        self._by_json: dict[str, dict[str, tuple[Any, GoField]]] = {}
        self._lists: dict[str, tuple[tuple[int, str], ...]] = {}

    def message_class(self, full_name: str) -> Any | None:
        cls = self._classes.get(full_name)
        if cls is None:
            try:
                cls = self._factory(self.pool.FindMessageTypeByName(full_name))
            except KeyError:
                return None
            self._classes[full_name] = cls
        return cls

    def kind_class(self, api_version: str, kind: str) -> Any | None:
        """The message of ``kind`` in ``api_version``'s package, or of meta/v1 (``Status``)."""
        group, _, version = api_version.rpartition("/")
        package = protobuf_schema.api_package(group, version).replace("/", ".")
        if not kind or not version:
            return None
        return self.message_class(f"{package}.{kind}") or self.message_class(f"{_META}.{kind}")

    def go_field(self, message: str, fd: Any) -> GoField:
        known = self.go_fields.get(message, {}).get(fd.number)
        return known or GoField(fd.name, True, 0, False)

    def by_json(self, desc: Any) -> dict[str, tuple[Any, GoField]]:
        """JSON name -> (field descriptor, Go field) for one message type (memoised)."""
        table = self._by_json.get(desc.full_name)
        if table is None:
            table = {}
            for fd in desc.fields:
                info = self.go_field(desc.full_name, fd)
                # An embedded struct has no JSON name of its own; NUL never is one.
                table[f"\0{fd.name}" if info.inline else info.json] = (fd, info)
            self._by_json[desc.full_name] = table
        return table

    def required_lists(self, desc: Any) -> tuple[tuple[int, str], ...]:
        """(number, JSON name) of the slices without ``omitempty`` (``items``, ``containers``).

        An empty slice is absent from the wire; the server's object still has it, so the dict
        gets ``[]`` (memoised per message type).
        """
        found = self._lists.get(desc.full_name)
        if found is None:
            fields = self.go_fields.get(desc.full_name, {})
            found = tuple(
                (fd.number, fields[fd.number].json)
                for fd in desc.fields
                if fd.is_repeated
                and not (fd.message_type and fd.message_type.GetOptions().map_entry)
                and fd.number in fields
                and not fields[fd.number].omit
                and not fields[fd.number].inline
            )
            self._lists[desc.full_name] = found
        return found


_lock = threading.Lock()
_loaded: dict[str, Schema] = {}


def schema_missing(detail: str) -> ApiError:
    where = protobuf_schema.DEFAULT_DIR
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"kubesim cannot read {MEDIA_TYPE} bodies: {detail}; compile the upstream schema with "
        f"`make install` (or `python -m kubesim fetch-protobuf`, into {where}), or send "
        "application/json",
    )


def load_schema() -> Schema:
    """The schema of :func:`protobuf_schema.schema_dir`, loaded once; a 415 when absent."""
    directory = protobuf_schema.schema_dir()
    if directory is None:
        raise schema_missing("the compiled protobuf schema is not there")
    key = str(directory)
    with _lock:
        schema = _loaded.get(key)
        if schema is None:
            try:
                schema = Schema(directory)
            except ImportError as e:
                raise schema_missing(f"the protobuf package is not installed ({e})") from None
            _loaded[key] = schema
    return schema


# -- wire -> JSON -----------------------------------------------------------------------------
def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body -> the object dict its JSON form would have been."""
    from google.protobuf.message import DecodeError

    schema = load_schema()
    if not body.startswith(MAGIC):
        raise bad_request("provided object is not a Kubernetes protobuf message (no k8s magic)")
    try:
        unknown = schema.message_class(_UNKNOWN).FromString(body[len(MAGIC) :])
        api_version, kind = unknown.typeMeta.apiVersion, unknown.typeMeta.kind
        if unknown.contentEncoding:
            raise bad_request(f"unsupported protobuf contentEncoding {unknown.contentEncoding!r}")
        cls = schema.kind_class(api_version, kind)
        if cls is None:
            raise bad_request(
                f'no kind "{kind}" is registered for version "{api_version}" in scheme'
            )
        message = cls.FromString(unknown.raw)
    except DecodeError as e:
        raise bad_request(f"unable to decode protobuf body: {e}") from None
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    obj.update(_message_json(schema, message))
    return obj


def _rfc3339(seconds: int, micros: int | None = None) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    if micros is None:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{micros:06d}Z"


def go_duration(ns: int) -> str:
    """``time.Duration.String()``: ``1h2m3.5s``, ``250ms``, ``0s``."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size if size > 1 else ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return sign + text + _trim(rest / 1e9, 1_000_000_000) + "s"


def _trim(value: float, size: int) -> str:
    digits = len(str(size)) - 1
    return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else str(int(value))


def _special_json(name: str, m: Any) -> Any:
    if name == _TIME:  # an empty message is the zero time, whose JSON is null
        return _rfc3339(m.seconds) if m.ListFields() else None
    if name == _MICRO_TIME:
        return _rfc3339(m.seconds, m.nanos // 1000) if m.ListFields() else None
    if name == _QUANTITY:
        return m.string
    if name == _INT_OR_STRING:
        return m.strVal if m.type == 1 else m.intVal
    if name == _DURATION:
        return go_duration(m.duration)
    raw = m.raw if name == _RAW_EXTENSION else m.Raw  # FieldsV1
    return json.loads(raw) if raw else None


# Types whose JSON form is their own (a custom MarshalJSON in Go), not a JSON object.
_SPECIAL_ALL = frozenset(
    {_TIME, _MICRO_TIME, _QUANTITY, _INT_OR_STRING, _DURATION, _FIELDS_V1, _RAW_EXTENSION}
)
_ZERO = ("", 0, False, b"")


def _is_named_slice(schema: Schema, desc: Any) -> bool:
    """``type Verbs []string``: a message wrapping one repeated ``items`` field, no struct."""
    return (
        desc.full_name not in schema.go_fields
        and len(desc.fields) == 1
        and desc.fields[0].name == "items"
        and desc.fields[0].is_repeated
    )


def _message_json(schema: Schema, m: Any) -> Any:
    desc = m.DESCRIPTOR
    name = desc.full_name
    if name in _SPECIAL_ALL:
        return _special_json(name, m)
    if _is_named_slice(schema, desc):
        return [_value_json(schema, desc.fields[0], v) for v in m.items]
    out: dict[str, Any] = {}
    for fd, value in m.ListFields():
        info = schema.go_field(name, fd)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            converted: Any = {k: _value_json(schema, value_fd, value[k]) for k in sorted(value)}
        elif fd.is_repeated:
            converted = [_value_json(schema, fd, v) for v in value]
        else:
            converted = _value_json(schema, fd, value)
            if info.omit and not info.pointer and converted in _ZERO:
                continue
            if info.omit == 2 and converted in (None, {}):
                continue
        if info.inline and isinstance(converted, dict):
            out.update(converted)
        else:
            out[info.json] = converted
    for _number, json_name in schema.required_lists(desc):
        out.setdefault(json_name, [])
    return out


def _value_json(schema: Schema, fd: Any, value: Any) -> Any:
    if fd.message_type is not None:
        return _message_json(schema, value)
    if fd.type == fd.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


# -- JSON -> wire -----------------------------------------------------------------------------
def encode(obj: dict[str, Any]) -> bytes:
    """An object dict (with apiVersion and kind) -> a protobuf response body."""
    schema = load_schema()
    api_version, kind = obj.get("apiVersion") or "", obj.get("kind") or ""
    cls = schema.kind_class(api_version, kind)
    if cls is None:
        raise schema_missing(f"no protobuf message for {api_version} {kind}")
    message = cls()
    _fill(schema, message, obj)
    unknown = schema.message_class(_UNKNOWN)()
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    unknown.raw = message.SerializeToString()
    unknown.contentEncoding = ""
    unknown.contentType = ""
    return MAGIC + unknown.SerializeToString()


def _parse_time(text: str) -> tuple[int, int]:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()), moment.microsecond * 1000


def _fill_special(name: str, m: Any, value: Any) -> None:
    if name in (_TIME, _MICRO_TIME):
        seconds, nanos = _parse_time(value)
        m.seconds = seconds
        if name == _MICRO_TIME:
            m.nanos = nanos
    elif name == _QUANTITY:
        m.string = str(value)
    elif name == _INT_OR_STRING:
        if isinstance(value, int):
            m.type, m.intVal = 0, value
        else:
            m.type, m.strVal = 1, str(value)
    elif name == _DURATION:
        raise ValueError("metav1.Duration is not encoded by kubesim")
    elif name == _RAW_EXTENSION:
        m.raw = json.dumps(value, separators=(",", ":")).encode()
    else:  # FieldsV1
        m.Raw = json.dumps(value, separators=(",", ":")).encode()


def _fill(schema: Schema, m: Any, data: Any) -> None:
    desc = m.DESCRIPTOR
    if desc.full_name in _SPECIAL_ALL:
        _fill_special(desc.full_name, m, data)
        return
    if _is_named_slice(schema, desc):
        m.items.extend(data)
        return
    table = schema.by_json(desc)
    inline = [fd for fd, info in table.values() if info.inline]
    nested: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        hit = table.get(key)
        if hit is None:
            for fd in inline:  # a key of an embedded struct, flattened into this one
                if key in schema.by_json(fd.message_type):
                    nested.setdefault(fd.name, {})[key] = value
                    break
            continue  # no such field (apiVersion/kind of a list item): not on the wire
        fd, info = hit
        if value is not None:
            _set(schema, m, fd, value)
        elif fd.message_type is not None and not info.pointer and not fd.is_repeated:
            getattr(m, fd.name).SetInParent()  # a zero struct (null Time): Go writes it empty
    for field_name, part in nested.items():
        _fill(schema, getattr(m, field_name), part)


def _set(schema: Schema, m: Any, fd: Any, value: Any) -> None:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        target = getattr(m, fd.name)
        value_fd = fd.message_type.fields_by_name["value"]
        for k, v in value.items():
            if value_fd.message_type is not None:
                _fill(schema, target[k], v)
            else:
                target[k] = _scalar(value_fd, v)
    elif fd.is_repeated:
        target = getattr(m, fd.name)
        for item in value:
            if fd.message_type is not None:
                _fill(schema, target.add(), item)
            else:
                target.append(_scalar(fd, item))
    elif fd.message_type is not None:
        sub = getattr(m, fd.name)
        sub.SetInParent()
        _fill(schema, sub, value)
    else:
        setattr(m, fd.name, _scalar(fd, value))


def _scalar(fd: Any, value: Any) -> Any:
    if fd.type == fd.TYPE_BYTES:
        return base64.b64decode(value)
    return value


def encode_json(body: bytes) -> bytes:
    """A JSON response body (an object, a list or a Status) -> its protobuf form."""
    return encode(json.loads(body))


def encode_watch_event(event_type: str, object_json: bytes) -> bytes:
    """One frame of a protobuf watch stream (``;stream=watch``): a 4-byte big-endian length,
    then a raw ``metav1.WatchEvent`` whose ``object.raw`` is the enveloped object."""
    schema = load_schema()
    event = schema.message_class(f"{_META}.WatchEvent")()
    event.type = event_type
    event.object.raw = encode_json(object_json)
    data = event.SerializeToString()
    return len(data).to_bytes(4, "big") + data


@lru_cache(maxsize=64)
def accepts_only_protobuf(accept: str) -> bool:
    """Whether the Accept header lists protobuf and nothing JSON can answer (no JSON, YAML or
    wildcard clause): then the response is encoded; otherwise JSON is an acceptable answer."""
    media = [clause.partition(";")[0].strip().lower() for clause in accept.split(",")]
    return MEDIA_TYPE in media and not any(
        m in ("application/json", "application/yaml", "application/*", "*/*") for m in media
    )
