"""A fast multi-row INSERT for the hot paths that write thousands of rows at once.

Django's ``bulk_create`` compiles every field of every row through the ORM's expression
machinery; for a first signup import (or the audit rows of a rollout wave) that costs more
than the network work it records. This builds one
parameterised INSERT from the model's own field list and runs it with ``executemany``.
Values are prepared the way the ORM prepares them (``Field.get_db_prep_save``), except for the
plain text, integer and boolean columns and foreign keys to integer keys, which every backend
takes as they are; JSON columns, which go straight to the backend's own ``adapt_json_value``
(what ``JSONField.get_db_prep_save`` ends in for plain data, without three layers of calls per
value), with the text encoded by msgspec (``json_text``) when the field has no encoder; and
date-times without ``auto_now``, which go straight to
``adapt_datetimefield_value`` (they must be aware, as everything this project stores is).

Invariant: call inside ``transaction.atomic()`` (autocommit would commit row by row), with
model instances that ``bulk_create`` would accept, or plain objects holding the same values
by attribute name (``site_id``, not ``site``); primary keys are not set on them. Auto-now
date-times are the time of the call, the same for every row (they are neither read off nor
set on the objects).
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Sequence
from datetime import UTC
from types import SimpleNamespace
from typing import Any

import msgspec
from django.db import connection, models

INTEGER_TYPES = frozenset(
    {
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
    }
)
PLAIN_TYPES = frozenset({"CharField", "TextField", "SlugField", "BooleanField"}) | INTEGER_TYPES
_msgspec_encode = msgspec.json.encode
_EMPTY_JSON = {list: "[]", dict: "{}"}
_TEXT_JSON_VENDORS = ("sqlite", "postgresql")  # where _json_text_parameter takes text as is


def insert_rows(model: type[models.Model], instances: Sequence[Any]) -> int:
    """Insert ``instances`` with one statement per call; returns how many rows."""
    if not instances:
        return 0
    if not connection.in_atomic_block:
        raise RuntimeError("insert_rows must run inside transaction.atomic()")
    plan = _ColumnPlan.of([f for f in model._meta.concrete_fields if not f.primary_key])
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in plan.fields)
    placeholders = ", ".join(["%s"] * len(plan.fields))
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"
    rows = [plan.row(obj) for obj in instances]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    return len(rows)


def new_row(model: type[models.Model], **values: Any) -> SimpleNamespace:
    """What ``model(**values)`` would hold, as a plain object for ``insert_rows``.

    ``values`` by attribute name (``site_id``, not ``site``); every other column gets the
    field's default (a callable default is called, once per row). Building thousands of model
    instances costs more than inserting them (``Model.__init__`` walks every field and its
    descriptors); a row that is only ever inserted needs none of that.
    """
    constant, factories = _defaults(model)
    row = SimpleNamespace()
    columns = row.__dict__  # filled in place: SimpleNamespace(**values) would copy them twice
    columns.update(constant)
    for name, make in factories:
        if name not in values:
            columns[name] = make()
    columns.update(values)
    return row


@functools.cache
def _defaults(
    model: type[models.Model],
) -> tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]:
    constant: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.has_default() and callable(field.default):
            factories.append((field.attname, field.default))
        else:
            constant[field.attname] = field.get_default()
    return constant, tuple(factories)


class _ColumnPlan:
    """How the columns of one statement are read off each object and made ready.

    Columns are ordered for speed, not as the model lists them (the statement names them):
    first the ones read off the object, all with one ``attrgetter`` call per row, then the
    constants (auto-now date-times). ``convert`` lists, by position in the row, the read
    values that the backend cannot take as they are.
    """

    def __init__(
        self,
        read: list[models.Field],
        convert: list[tuple[int, Callable[[Any], Any]]],
        constant: list[tuple[models.Field, Any]],
    ) -> None:
        self.fields = read + [field for field, _ in constant]
        self.constants = [value for _, value in constant]
        self.convert = convert
        getter = operator.attrgetter(*(field.attname for field in read))
        # attrgetter of one name returns the value itself, of several a tuple.
        self.values_of = getter if len(read) > 1 else lambda obj: (getter(obj),)

    @classmethod
    def of(cls, fields: list[models.Field]) -> _ColumnPlan:
        read: list[models.Field] = []
        convert: list[tuple[int, Callable[[Any], Any]]] = []
        constant: list[tuple[models.Field, Any]] = []
        for field in fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                # One moment for the whole statement: what the field's pre_save makes of the
                # clock (it reads nothing off the object; it only sets the time on it).
                now = field.pre_save(SimpleNamespace(), True)
                constant.append((field, field.get_db_prep_save(now, connection)))
                continue
            converter = _converter(field)
            if converter is not None:
                convert.append((len(read), converter))
            read.append(field)
        return cls(read, convert, constant)

    def row(self, obj: Any) -> list[Any]:
        row = list(self.values_of(obj))
        for position, converter in self.convert:
            row[position] = converter(row[position])
        row += self.constants
        return row


def _converter(field: models.Field) -> Callable[[Any], Any] | None:
    """What makes one column's value (read off an object) ready for the backend; ``None`` when
    the backend takes it as it is."""
    kind = field.get_internal_type()
    if kind in PLAIN_TYPES:
        return None
    if kind == "ForeignKey" and field.target_field.get_internal_type() in INTEGER_TYPES:
        return None  # the ``_id`` value, already the key
    if kind == "DateTimeField":
        adapt_datetime = connection.ops.adapt_datetimefield_value
        if connection.vendor == "sqlite" and connection.timezone is UTC:
            # What the backend's adapter makes of a UTC date-time (``make_naive`` into UTC,
            # then ``str``), without its two layers of calls; other zones go through it.
            # Rows made together often share one date-time object (a batch's arrival time),
            # and ``str`` of one costs more than the rest of its row: remember the last one.
            # Date-times are immutable, so the same object always gives the same text.
            last: list[Any] = [None, None]

            def sqlite_utc_value(value: Any) -> Any:
                if value is last[0]:
                    return last[1]
                if value is not None and value.tzinfo is UTC:
                    last[:] = value, str(value.replace(tzinfo=None))
                    return last[1]
                return adapt_datetime(value)

            return sqlite_utc_value
        return adapt_datetime
    if kind == "JSONField":
        adapt, encoder = connection.ops.adapt_json_value, field.encoder
        text_parameter = _json_text_parameter(adapt, encoder)
        # Without an encoder, plain data is encoded by msgspec and goes in as text.
        as_text = encoder is None and connection.vendor in _TEXT_JSON_VENDORS

        def json_value(value: Any) -> Any:
            if value is None:
                return None
            if type(value) is JSONText:
                return text_parameter(value.text)
            if as_text:
                return text_parameter(json_text(value))
            return adapt(value, encoder)

        return json_value
    # Everything else as the ORM saves it. Their ``pre_save`` only reads the value (the
    # auto-now ones are constants above); a field type whose pre_save does more (files) has
    # no place in a bulk insert.
    if type(field).pre_save is not models.Field.pre_save and not hasattr(field, "auto_now"):
        raise TypeError(f"insert_rows cannot save {field} ({kind}): its pre_save has effects")
    return lambda value: field.get_db_prep_save(value, connection)


class JSONText:
    """A JSON column's value already encoded, for ``insert_rows`` to store as it is.

    For text read off the wire that would otherwise be decoded and encoded again; the caller
    vouches that ``text`` is valid JSON, and it is what the column then holds (PostgreSQL's
    jsonb normalises it, as it would any JSON). Only ``insert_rows`` knows it: the ORM would
    store it as a JSON string.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"JSONText({self.text!r})"


def _json_text_parameter(adapt: Callable[[Any, Any], Any], encoder: Any) -> Callable[[str], Any]:
    """What a JSON column's text becomes as a parameter on this connection's backend."""
    if connection.vendor == "sqlite":
        return _as_is
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        return lambda text: Jsonb(text, dumps=_as_is)
    return lambda text: adapt(json.loads(text), encoder)


def _as_is(text: str) -> str:
    return text


def json_text(value: Any) -> str:
    """``json.dumps(value)`` up to formatting (no spaces, non-ASCII as itself), at msgspec's
    speed: the same JSON value, read back equal.

    msgspec writes NaN and the infinities as ``null`` where ``json.dumps`` writes ``NaN`` and
    ``Infinity``, so an encoding with a ``null`` in it (rare in what is stored here, and a
    false alarm when it is inside a string) is redone with ``json.dumps``, as is anything
    msgspec refuses. Callers pass plain JSON data (decoded documents, dicts of strings and
    numbers); msgspec would also encode date-times, UUIDs and sets, which ``json.dumps``
    refuses.
    """
    if not value and type(value) in _EMPTY_JSON:
        return _EMPTY_JSON[type(value)]  # the empty reasons or document of many rows
    try:
        encoded = _msgspec_encode(value)
    except (TypeError, ValueError, OverflowError):
        return json.dumps(value)
    if b"null" in encoded:
        return json.dumps(value)
    return encoded.decode()
