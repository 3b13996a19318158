"""The reads verify and the mapping preview make besides a run's: a destination table by its
UUID key (rows by UUIDs, in their order, as tuples; every key from one snapshot), and a
table's first rows by key."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from typing import Any, TypeVar

import sqlalchemy as sa

from .connectors import Database
from .ids import encode_key, value_text
from .pg_arrays import uuid_array
from .values import as_uuid

_IN_CHUNK = 1000  # values per IN list: well below every driver's parameter limit

T = TypeVar("T")


class _Deferred(Future[T]):
    """A future whose work runs in the caller's thread, when its result is asked for."""

    def __init__(self, work: Callable[[], T]) -> None:
        super().__init__()
        self._work: Callable[[], T] | None = work

    def result(self, timeout: float | None = None) -> T:
        work, self._work = self._work, None
        if work is not None:
            try:
                self.set_result(work())
            except BaseException as error:
                self.set_exception(error)
        return super().result(timeout)


class DestinationTable:
    """Reads of one destination table by its UUID key: fetch by UUIDs, stream the keys."""

    def __init__(self, database: Database, name: str, key_column: str) -> None:
        self.database = database
        self.name = name  # as the mapping writes it (it may be schema-qualified)
        self.table = table = database.require_table(name)
        self.key_column = key_column
        key_info = table.column(key_column)
        # A UUID column on PostgreSQL is probed as uuid; anything else compares as text.
        self._bind_uuid = (
            database.dialect == "postgresql" and key_info is not None and key_info.kind == "uuid"
        )
        # PostgreSQL takes a batch's keys as one array parameter: a query of a thousand
        # placeholders costs more to build and parse than to run.
        self._probes = database.dialect == "postgresql"
        self._worker: ThreadPoolExecutor | None = None  # start_fetch's thread
        self._element = "uuid" if self._bind_uuid else "text"
        self._target = self._quote(table.name)
        if table.schema:
            self._target = f"{self._quote(table.schema)}.{self._target}"

    def _quote(self, name: str) -> str:
        """An introspected name quoted for SQL sent to the driver as it is (the dialect's
        quoting also doubles a ``%``, which the driver would read as a placeholder)."""
        return self.database.engine.dialect.identifier_preparer.quote(name)

    def _clause(self, columns: Sequence[str]) -> sa.TableClause:
        names = dict.fromkeys([self.key_column, *columns])
        return sa.table(self.table.name, *(sa.column(n) for n in names), schema=self.table.schema)

    def _bind(self, value: uuid.UUID) -> Any:
        return value if self._bind_uuid else str(value)

    def start_fetch(
        self, uuids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> Future[list[tuple[Any, ...] | None]]:
        """``fetch``, started now and given by the future's ``result()``.

        On PostgreSQL it runs on the table's own thread, so that the time the query spends
        in the server overlaps the caller's work on the batch (the driver waits for the
        server without holding the interpreter); elsewhere it runs when asked for.
        """
        if not self._probes:
            return _Deferred(lambda: self.fetch(uuids, columns))
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="verify-destination")
        return self._worker.submit(self.fetch, uuids, columns)

    def close(self) -> None:
        """Ends the table's thread, once the fetch it runs (if any) is over."""
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None

    def fetch(
        self, uuids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> list[tuple[Any, ...] | None]:
        """The row of each of ``uuids``, in their order: its ``columns``' values as a tuple,
        or None where the table has no row of that UUID."""
        if not uuids:
            return []
        if self._probes:
            return self._fetch_by_probes(uuids, columns)
        found = self._fetch_by_lists(uuids, columns)
        return [found.get(u) for u in uuids]

    def _fetch_by_probes(
        self, uuids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> list[tuple[Any, ...] | None]:
        """PostgreSQL: one index probe per UUID, each row back with its position.

        ``key = ANY(array)`` is not used: for a batch of random UUIDs the planner reads the
        whole table (a parallel sequential scan, measured 70 ms a batch at 400,000 rows and
        growing with the table), where 5,000 probes of the key's index take 15 ms whatever
        its size. A LATERAL subquery cannot be flattened into a join, so each key of the
        array is one probe; ``WITH ORDINALITY`` numbers the keys, so the rows need no key
        parsed to find their place.
        """
        selected = ", ".join(map(self._quote, columns)) or "NULL"
        sql = (
            f"SELECT probe.n, t.* FROM unnest(%s::{self._element}[]) "
            "WITH ORDINALITY AS probe(k, n) CROSS JOIN LATERAL "
            f"(SELECT {selected} FROM {self._target} "
            f"WHERE {self._quote(self.key_column)} = probe.k OFFSET 0) AS t"
        )
        rows: list[tuple[Any, ...] | None] = [None] * len(uuids)
        with self.database.connect() as conn, closing(conn.connection.cursor()) as cursor:
            # The driver's own cursor: its rows are tuples already, as the verifier takes
            # them (no result object per row); fetchall, not a driver round per row.
            cursor.execute(sql, (uuid_array(uuids),))
            for row in cursor.fetchall():
                # Should two rows hold one key, the last one read speaks for it.
                rows[row[0] - 1] = row[1:] if columns else ()
        return rows

    def _fetch_by_lists(
        self, uuids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> dict[uuid.UUID, tuple[Any, ...]]:
        """Other databases (SQLite): the rows by IN lists, by their parsed key."""
        t = self._clause(columns)
        key = t.c[self.key_column]
        found: dict[uuid.UUID, tuple[Any, ...]] = {}
        with self.database.connect() as conn:
            for start in range(0, len(uuids), _IN_CHUNK):
                chunk = [self._bind(u) for u in uuids[start : start + _IN_CHUNK]]
                stmt = sa.select(key, *(t.c[c] for c in columns)).where(key.in_(chunk))
                for row in conn.execute(stmt).fetchall():
                    parsed = as_uuid(row[0])
                    if parsed is not None:
                        found[parsed] = tuple(row[1:])
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
