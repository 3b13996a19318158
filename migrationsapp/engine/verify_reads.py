"""The reads verify and the mapping preview make besides a run's: a destination table by its
UUID key (rows by UUIDs, every key from one snapshot), and a table's first rows by key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .connectors import Database
from .ids import encode_key, value_text
from .values import as_uuid

_IN_CHUNK = 1000  # values per IN list: well below every driver's parameter limit


class DestinationTable:
    """Reads of one destination table by its UUID key: fetch by UUIDs, stream the keys."""

    def __init__(self, database: Database, name: str, key_column: str) -> None:
        self.database = database
        self.name = name  # as the mapping writes it (it may be schema-qualified)
        self.table = table = database.require_table(name)
        self.key_column = key_column
        key_info = table.column(key_column)
        # A UUID column on PostgreSQL binds uuid.UUID; anything else compares as text.
        self._bind_uuid = (
            database.dialect == "postgresql" and key_info is not None and key_info.kind == "uuid"
        )
        # PostgreSQL takes a batch's keys as one array parameter (``= ANY``): a query of a
        # thousand placeholders costs more to build and parse than to run.
        self._array: sa.types.TypeEngine | None = None
        if database.dialect == "postgresql":
            element = postgresql.UUID(as_uuid=True) if self._bind_uuid else sa.Text()
            self._array = postgresql.ARRAY(element)

    def _clause(self, columns: Sequence[str]) -> sa.TableClause:
        names = dict.fromkeys([self.key_column, *columns])
        return sa.table(self.table.name, *(sa.column(n) for n in names), schema=self.table.schema)

    def _bind(self, value: uuid.UUID) -> Any:
        return value if self._bind_uuid else str(value)

    def fetch(
        self, uuids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> dict[uuid.UUID, dict[str, Any]]:
        """``{uuid: {column: value}}`` for the rows that exist among ``uuids``."""
        t = self._clause(columns)
        key = t.c[self.key_column]
        found: dict[uuid.UUID, dict[str, Any]] = {}
        if not uuids:
            return found
        chunk_size = len(uuids) if self._array is not None else _IN_CHUNK
        with self.database.connect() as conn:
            for start in range(0, len(uuids), chunk_size):
                chunk = [self._bind(u) for u in uuids[start : start + chunk_size]]
                if self._array is not None:
                    match = key == sa.any_(sa.bindparam("keys", chunk, type_=self._array))
                else:
                    match = key.in_(chunk)
                stmt = sa.select(key, *(t.c[c] for c in columns)).where(match)
                # fetchall: a driver round of fetchone per row costs more than the query.
                for row in conn.execute(stmt).fetchall():
                    parsed = as_uuid(row[0])
                    if parsed is not None:
                        found[parsed] = dict(zip(columns, row[1:], strict=True))
        return found

    def count(self) -> int:
        """How many rows the table holds."""
        t = self._clause([])
        with self.database.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())

    def stream(self, columns: Sequence[str], batch_size: int) -> Iterator[list[dict[str, Any]]]:
        """Every row's key and ``columns``, from one snapshot, in batches."""
        names = list(dict.fromkeys([self.key_column, *columns]))
        return self.database.stream_rows(self.name, names, batch_size=batch_size)


def read_first_rows(
    db: Database, table: str, key_columns: Sequence[str], columns: Sequence[str], limit: int
) -> list[tuple[str, dict[str, Any]]]:
    """The first ``limit`` rows of ``table`` by key, as ``(key text, {column: value})``.

    The keys are chosen by an ordered query (in the source's collation), then the rows are
    fetched by key so that their values are read exactly as a run reads them.
    """
    if limit < 1:
        return []
    info = db.require_table(table)
    t = sa.table(info.name, *(sa.column(c) for c in key_columns), schema=info.schema)
    keys = [t.c[c] for c in key_columns]
    with db.connect() as conn:
        raw = [tuple(r) for r in conn.execute(sa.select(*keys).order_by(*keys).limit(limit))]
    fetched = db.fetch_rows(table, key_columns, raw, columns)
    position = {tuple(value_text(v) for v in key): i for i, key in enumerate(raw)}

    def order(item: tuple[tuple, dict[str, Any]]) -> int:
        # A value the reader converts (a MySQL TIMESTAMP key) may not match its raw text:
        # such rows go last rather than being lost.
        return position.get(tuple(value_text(v) for v in item[0]), len(position))

    return [(encode_key(list(key)), row) for key, row in sorted(fetched.items(), key=order)]
