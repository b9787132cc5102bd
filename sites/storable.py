"""Text every supported database can store, made from text any JSON document can carry.

JSON (and so CouchDB) carries NUL characters and unpaired UTF-16 surrogates (``"\\ud800"``);
SQLite refuses the surrogates (they are not UTF-8) and PostgreSQL refuses both in text and in
jsonb. A signup document holding one would fail its whole import batch, and every later sync
would stop at it: one hostile document would block all signups after it. So what the sync
stores is the document with each such character replaced by U+FFFD (the replacement
character); validation still sees, and its reasons still name, the original characters.

Pure functions: plain data in, plain data out.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

REPLACEMENT = "\ufffd"
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_encode = msgspec.json.encode
_NUL_ESCAPE = b"\\u0000"  # the only way JSON writes a NUL


def storable_text(text: str) -> str:
    """``text`` with NUL and unpaired surrogates replaced (unchanged when it has none)."""
    return UNSTORABLE.sub(REPLACEMENT, text)


def storable_json(value: Any) -> Any:
    """``value`` (decoded JSON) with ``storable_text`` applied to every key and string.

    ``value`` itself is returned (not a copy) when it needs no change, which is nearly always:
    one C-speed encoding finds that, where walking the document in Python cost more than the
    rest of a signup's import. UTF-8 cannot encode an unpaired surrogate (the encoder raises),
    and a NUL is written as the escape ``\\u0000``; a match of that escape may also be an
    escaped backslash followed by "u0000", a false alarm that only costs the walk.
    """
    try:
        encoded = _encode(value)
    except UnicodeEncodeError:
        return _replaced(value)
    if _NUL_ESCAPE not in encoded:
        return value
    return _replaced(value)


def json_text_is_storable(text: str) -> bool:
    """Whether JSON ``text`` that msgspec decoded (so it holds no lone surrogate: msgspec
    refuses them, escaped or not) can be stored as it is: it has no NUL, which JSON can only
    write as the escape (the same false alarm as in ``storable_json`` is possible)."""
    return _NUL_ESCAPE.decode() not in text


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {_replaced(key): _replaced(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item) for item in value]
    return value
