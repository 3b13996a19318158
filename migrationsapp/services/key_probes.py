"""Statements that find a batch's rows in a control table one index probe per key.

The control tables grow faster than their statistics follow: a baseline adds a million
record-map entries in minutes, and with autovacuum off (or between two of its ANALYZEs) the
planner still believes the entity has a handful of entries. It then answers
``entity_type = %s AND legacy_key_text = ANY(%s)`` by reading *every* entry of the entity
and filtering, once per batch, so a baseline grew quadratically with its tables (measured
on 1M patients: 160 ms a lookup instead of 4 ms, 2,000 lookups a run). A flattened join on
``unnest`` fares no better: it hashes the whole entity.

A LATERAL subquery with ``LIMIT``/``OFFSET`` cannot be flattened into the join, so each key
of the array is one parameterized probe of the (scope, key) index, whatever the statistics
say. Used on PostgreSQL only; the SQLite paths keep their IN lists.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from migrationsapp.engine.pg_arrays import text_array, uuid_array

# The probe's alias: not a column name of any control table.
_PROBE = "probe_key"
# Key columns indexed together with their scope (the record map's and the quarantine's
# (entity_type, legacy_key_text), the change set's (analysis_id, legacy_key_text)): a probe
# takes both from that index. Any other key column has an index of its own (the record
# map's destination_uuid): the scope is then checked on the row that index finds, written as
# an expression so that the planner cannot take the scope's index instead. With stale
# statistics it did, and read every entry of the entity once per key (verify's destination
# pass of 48,000 records: two seconds a batch).
_KEYS_INDEXED_WITH_SCOPE = frozenset({"legacy_key_text"})


def probe_select(
    table: str,
    columns: str,
    *,
    scope_column: str,
    key_column: str,
    key_type: str,
    where: str = "",
    unique: bool = False,
) -> str:
    """``SELECT columns`` of the rows of ``table`` whose ``key_column`` is one of the keys.

    Parameters, in order: the keys (a list, sent as one array of ``key_type``), then the
    value of ``scope_column``. ``columns`` name the table's columns unqualified (``t.*`` is
    what they see); ``where`` adds conditions (``"AND deleted_at IS NULL"``). ``unique``: at
    most one row per key, so the probe stops at the first.
    """
    # OFFSET 0 is the classic fence: like LIMIT, it keeps the subquery from being pulled up.
    stop = "LIMIT 1" if unique else "OFFSET 0"
    scope = (
        scope_column if key_column in _KEYS_INDEXED_WITH_SCOPE else f"({scope_column}::text || '')"
    )
    return (
        f"SELECT {columns} FROM unnest(%s::{key_type}[]) AS probe({_PROBE}) "
        f"CROSS JOIN LATERAL (SELECT * FROM {table} "
        f"WHERE {scope} = %s AND {key_column} = probe.{_PROBE} {where} {stop}) AS t"
    )


def probe_ids(
    table: str, *, scope_column: str, key_column: str, key_type: str, where: str = ""
) -> str:
    """``id = ANY(ARRAY(…))``: a condition on ``table``'s primary key that picks its rows
    whose ``key_column`` is one of the keys, for an UPDATE or a DELETE. Its parameters, in
    order: the keys, then the value of ``scope_column``."""
    inner = probe_select(
        table,
        "t.id",
        scope_column=scope_column,
        key_column=key_column,
        key_type=key_type,
        where=where,
    )
    return f"id = ANY(ARRAY({inner}))"


def probe_keys(keys: Sequence[str] | Sequence[uuid.UUID], key_type: str) -> str:
    """The keys as the probes' array parameter: one array literal (``engine.pg_arrays``),
    which the driver sends as one string instead of dumping a list element by element."""
    return uuid_array(keys) if key_type == "uuid" else text_array(keys)  # type: ignore[arg-type]
