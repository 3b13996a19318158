"""Which destination fields an update changed, as the record event keeps them.

A writer reports, for each row that existed before its upsert, the columns whose stored
value differs from the one written (as the database compares them: ``1.50`` and ``1.5`` in a
numeric column are the same value), each with its value before and after. ``field_changes``
turns that into what a record event stores, ``{field: [before, after]}``: JSON-safe values
(``values.json_value``; a JSON document as its compact text) and bounded, a long text cut to
``TEXT_LIMIT`` characters and kept as ``{"truncated": first characters, "length": n}``, so
that an event stays small whatever the record holds. Every other stored value is null, a
boolean, a number or a string: a dict means a truncated value. No Django here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .values import json_value

# Characters of a value kept for display; the event stores the full length beside them.
TEXT_LIMIT = 200

# column -> (value before the write, value written), both as the database holds them.
RawChanges = Mapping[str, tuple[Any, Any]]
# field -> [before, after], JSON-safe and bounded.
FieldChanges = dict[str, list[Any]]


def field_changes(raw: RawChanges) -> FieldChanges:
    """The stored form of one row's changed columns, in column order as given."""
    return {
        column: [shown_value(before), shown_value(after)] for column, (before, after) in raw.items()
    }


def shown_value(value: Any) -> Any:
    """``value`` JSON-safe, a document as its text, a long text truncated with its length."""
    safe = json_value(value)
    if isinstance(safe, str) and "\x00" in safe:
        # The control database's jsonb cannot hold NUL: shown as the symbol for it.
        safe = safe.replace("\x00", "\u2400")
    if isinstance(safe, dict | list):
        safe = json.dumps(safe, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if isinstance(safe, str) and len(safe) > TEXT_LIMIT:
        return {"truncated": safe[:TEXT_LIMIT], "length": len(safe)}
    return safe
