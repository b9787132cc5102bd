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

REPLACEMENT = "\ufffd"
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """``text`` with NUL and unpaired surrogates replaced (unchanged when it has none)."""
    return UNSTORABLE.sub(REPLACEMENT, text)


def storable_json(value: Any) -> Any:
    """``value`` (decoded JSON) with ``storable_text`` applied to every key and string."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_json(key): storable_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable_json(item) for item in value]
    return value
