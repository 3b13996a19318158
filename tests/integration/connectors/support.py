"""What the connector tests share: running SQL as a legacy application would, scratch tables,
the people table every dialect gets, and reading every content hash of a table."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from migrationsapp.engine.connectors import (
    ConnectionPolicy,
    ConnectionSpec,
    Database,
    open_database,
)

_DRIVERS = {
    "mysql": "mysql+pymysql",
    "postgresql": "postgresql+psycopg",
    "sqlite": "sqlite+pysqlite",
}


def execute(url: str, *statements: str, rows: tuple[str, list[dict]] | None = None) -> None:
    """Run DDL/DML as a legacy application would, outside the connector under test."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    parsed = parsed.set(drivername=_DRIVERS[backend])
    if backend == "mysql":
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    engine = sa.create_engine(parsed, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            if backend == "mysql":
                # What old applications ran with: zero and impossible dates accepted.
                conn.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
            for statement in statements:
                conn.exec_driver_sql(statement)
            if rows is not None:
                table, values = rows
                if backend == "sqlite":  # sqlite3 cannot bind Decimal
                    values = [{k: _sqlite_value(v) for k, v in row.items()} for row in values]
                names = list(values[0])
                target = sa.table(table, *(sa.column(n) for n in names))
                conn.execute(sa.insert(target), values)
    finally:
        engine.dispose()


def _sqlite_value(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value


def all_hashes(db: Database, table: str, keys: list[str], hashed: list[str]) -> dict[tuple, str]:
    out: dict[tuple, str] = {}
    for batch in db.stream_key_hashes(table, keys, hashed, batch_size=2):
        for key, digest in batch:
            assert key not in out, f"key {key} streamed twice"
            out[key] = digest
    return out


def new_table_name(label: str) -> str:
    return f"{label}_{secrets.token_hex(3)}"


def open_legacy(url: str, policy: ConnectionPolicy, **spec: str) -> Database:
    """Open ``url`` through the connectors, as the connection named ``legacy``."""
    return open_database(ConnectionSpec(name="legacy", url=url, **spec), policy, environ={})


@dataclass
class Source:
    dialect: str
    url: str
    db: Database


PEOPLE = [
    {"id": 1, "name": "Ann", "nickname": None, "note": "first", "balance": Decimal("10.00")},
    {"id": 2, "name": "Bob", "nickname": "", "note": "😀 emoji", "balance": Decimal("0.50")},
    {"id": 3, "name": "Cy", "nickname": "C", "note": "x", "balance": None},
    {"id": 4, "name": "Dee", "nickname": "D", "note": "", "balance": Decimal("-3.10")},
    {"id": 5, "name": "Eve", "nickname": "E", "note": None, "balance": Decimal("99.99")},
]
PEOPLE_COLUMNS = ["id", "name", "nickname", "note", "balance"]


def create_people(source: Source) -> str:
    """A fresh people table with PEOPLE in it; its name."""
    table = new_table_name("people")
    charset = " DEFAULT CHARSET=utf8mb4" if source.dialect == "mysql" else ""
    execute(
        source.url,
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, "
        f"nickname VARCHAR(50), note TEXT, balance DECIMAL(10,2)){charset}",
        rows=(table, PEOPLE),
    )
    return table


def set_value(source: Source, table: str, column: str, value: object, row_id: int = 1) -> None:
    parsed = make_url(source.url)
    engine = sa.create_engine(parsed.set(drivername=_DRIVERS[parsed.get_backend_name()]))
    if source.dialect == "sqlite":
        value = _sqlite_value(value)
    try:
        with engine.begin() as conn:
            target = sa.table(table, sa.column("id"), sa.column(column))
            conn.execute(sa.update(target).where(target.c.id == row_id).values({column: value}))
    finally:
        engine.dispose()
