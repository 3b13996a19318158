"""A batch's control rows COPYed in PostgreSQL's binary format (the record map, the events).

Every batch of a run writes one record-map entry and one record event per record. In the
text format the server parses every field back from text (timestamps, UUIDs, JSON), which
was a large part of the control commit; in the binary format each value goes in the form
the server stores, and psycopg's C adapters build the rows. The rows are given a column at
a time, as ``services.bulk`` takes them (a ``Same`` for a value every row shares), and the
stored values are the same as through the text format.

Text with a NUL byte cannot be stored: such a row fails the whole COPY with the row and
column named, before anything is sent, as ``services.bulk`` does. JSON columns take either
a JSON document as text (sent as it is) or a value to dump.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import Any

from django.db import connection
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format

from migrationsapp.engine.copy_text import NUL_REASON, Same, json_text
from migrationsapp.services.bulk import Column

__all__ = ["copy_binary"]

# The types ``copy_binary`` is given are PostgreSQL's names (no length: ``varchar``).
TEXT_TYPES = frozenset({"text", "varchar"})


class _JsonbDocument(Dumper):
    """jsonb in binary: a version byte and the document's text. A ``str`` is a JSON
    document already (as in the text format); anything else is dumped."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        # The same text as the text format's (engine.copy_text), after jsonb's version.
        return b"\x01" + json_text(obj).encode("utf-8")


def copy_binary(
    table: str,
    names: Sequence[str],
    types: Sequence[str],
    columns: Sequence[Column],
    *,
    count: int,
) -> None:
    """COPY ``count`` rows, given as ``columns`` (a sequence or a ``Same`` per name, each
    of the PostgreSQL type in ``types``), into ``table``, inside the current transaction."""
    if not count:
        return
    _refuse_nul(table, names, types, columns)
    spread = [repeat(c.value, count) if isinstance(c, Same) else c for c in columns]
    quoted = ", ".join(connection.ops.quote_name(n) for n in names)
    sql = f"COPY {connection.ops.quote_name(table)} ({quoted}) FROM STDIN (FORMAT BINARY)"
    with connection.cursor() as cursor:
        raw = cursor.cursor
        # This cursor's adapters only (copied on write): jsonb by oid, for set_types.
        raw.adapters.register_dumper(None, _JsonbDocument)
        with raw.copy(sql) as copy:
            copy.set_types(list(types))
            write = copy.write_row
            for row in zip(*spread, strict=True):
                write(row)


def _refuse_nul(
    table: str, names: Sequence[str], types: Sequence[str], columns: Sequence[Column]
) -> None:
    """Raise, naming the first row and column, if a text value holds a NUL byte."""
    for name, kind, values in zip(names, types, columns, strict=True):
        if kind not in TEXT_TYPES:
            continue
        texts = [values.value] if isinstance(values, Same) else values
        present = [v for v in texts if v is not None]
        if "\x00" not in "".join(present):
            continue
        index = next(i for i, v in enumerate(texts) if v is not None and "\x00" in v)
        raise ValueError(f"{table}: row {index + 1}, column {name}: {NUL_REASON}")
