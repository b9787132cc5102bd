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
from django.utils import timezone

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


def insert_rows(model: type[models.Model], instances: Sequence[Any]) -> int:
    """Insert ``instances`` with one statement per call; returns how many rows."""
    if not instances:
        return 0
    if not connection.in_atomic_block:
        raise RuntimeError("insert_rows must run inside transaction.atomic()")
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"
    prepare = [_preparer(f) for f in fields]
    rows = [[prep(obj) for prep in prepare] for obj in instances]
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
    row = dict(constant)
    for name, make in factories:
        if name not in values:
            row[name] = make()
    row.update(values)
    return SimpleNamespace(**row)


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


def _preparer(field: models.Field) -> Callable[[models.Model], Any]:
    """How one column's value is read off an instance and made ready for the backend."""
    attname = field.attname
    kind = field.get_internal_type()
    if kind in PLAIN_TYPES:
        return operator.attrgetter(attname)
    if kind == "ForeignKey" and field.target_field.get_internal_type() in INTEGER_TYPES:
        return operator.attrgetter(attname)  # the ``_id`` value, already the key
    if kind == "DateTimeField":
        adapt_datetime = connection.ops.adapt_datetimefield_value
        if field.auto_now or field.auto_now_add:
            now = adapt_datetime(timezone.now())  # one moment for the whole statement
            return lambda obj: now

        if connection.vendor == "sqlite" and connection.timezone is UTC:
            # What the backend's adapter makes of a UTC date-time (``make_naive`` into UTC,
            # then ``str``), without its two layers of calls; other zones go through it.
            def sqlite_utc_value(obj: models.Model) -> Any:
                value = getattr(obj, attname)
                if value is not None and value.tzinfo is UTC:
                    return str(value.replace(tzinfo=None))
                return adapt_datetime(value)

            return sqlite_utc_value

        def datetime_value(obj: models.Model) -> Any:
            return adapt_datetime(getattr(obj, attname))

        return datetime_value
    if kind == "JSONField":
        adapt, encoder = connection.ops.adapt_json_value, field.encoder
        if encoder is None and connection.vendor in ("sqlite", "postgresql"):
            adapt = _fast_json_adapter()

        def json_value(obj: models.Model) -> Any:
            value = getattr(obj, attname)
            return None if value is None else adapt(value, encoder)

        return json_value
    return lambda obj: field.get_db_prep_save(field.pre_save(obj, True), connection)


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
    try:
        encoded = _msgspec_encode(value)
    except (TypeError, ValueError, OverflowError):
        return json.dumps(value)
    if b"null" in encoded:
        return json.dumps(value)
    return encoded.decode()


def _fast_json_adapter() -> Callable[[Any, Any], Any]:
    """``connection.ops.adapt_json_value`` for a field without an encoder, on ``json_text``."""
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        return lambda value, encoder: Jsonb(value, dumps=json_text)
    return lambda value, encoder: json_text(value)
