"""The destination table a writer writes: its quoted names, its connections, its values.

``Target`` is what ``load.TableWriter`` and the dialects' writes (``load_postgresql``,
``load_sqlite``) share: the table's quoted and schema-qualified name, the key column, the
parameter mark and value forms of the dialect, and a connection set up for writing. The
rows of one write come as ``row_columns.RowColumns``, the key column first.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from .database import Database
from .introspect import TableInfo

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    """One destination table of one database, keyed by ``key_column`` (a UUID)."""

    database: Database
    table: TableInfo
    key_column: str
    quote: Callable[[str], str]
    qualified: str  # the table's name, quoted, with its schema when it has one

    @classmethod
    def of(cls, database: Database, table: TableInfo, key_column: str) -> Target:
        quote = database.engine.dialect.identifier_preparer.quote
        qualified = (
            f"{quote(table.schema)}.{quote(table.name)}" if table.schema else quote(table.name)
        )
        return cls(database, table, key_column, quote, qualified)

    @property
    def is_sqlite(self) -> bool:
        return self.database.dialect == "sqlite"

    @property
    def driver_error(self) -> type[Exception]:
        """The DB-API driver's base error class (psycopg's ``Error`` on PostgreSQL)."""
        return self.database.engine.dialect.loaded_dbapi.Error

    def kind(self, column: str) -> str:
        """The column's kind (introspect.KINDS); ``other`` for a column not introspected."""
        info = self.table.column(column)
        return info.kind if info is not None else "other"

    def mark(self) -> str:
        return "?" if self.is_sqlite else "%s"

    def key_param(self, value: uuid.UUID) -> Any:
        return str(value) if self.is_sqlite else value

    def bindable(self, value: Any) -> Any:
        return sqlite_value(value) if self.is_sqlite else value

    def on_conflict(self, names: Sequence[str]) -> str:
        """The upsert's ``ON CONFLICT`` clause: every column of ``names`` but the key takes
        the value written."""
        updates = ", ".join(
            f"{self.quote(c)} = EXCLUDED.{self.quote(c)}" for c in names if c != self.key_column
        )
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return f"ON CONFLICT ({self.quote(self.key_column)}) {action}"

    def connect(self) -> sa.Connection:
        conn = self.database.engine.connect()
        if self.is_sqlite:
            # SQLite enforces foreign keys only when asked, per connection, outside a transaction.
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
        return conn

    def select_in(self, selected: str, column: str, params: Sequence[Any]) -> list[Any]:
        """The rows of ``SELECT selected … WHERE column IN (params)``, asked 1,000 at a time
        (``params`` bound as given)."""
        found: list[Any] = []
        with self.connect() as conn:
            for chunk in chunks(params, 1000):
                marks = ", ".join(self.mark() for _ in chunk)
                found.extend(
                    conn.exec_driver_sql(
                        f"SELECT {selected} FROM {self.qualified} WHERE {column} IN ({marks})",
                        tuple(chunk),
                    )
                )
        return found


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def sqlite_value(value: Any) -> Any:
    """Python values SQLite's driver cannot bind, as the text the schema expects."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value
