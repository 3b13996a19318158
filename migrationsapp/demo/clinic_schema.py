"""The clinic's two schemas and the plain SQL that reads and writes the legacy tables.

The legacy schema exists for MariaDB/MySQL and SQLite with the same logical shape. On
MariaDB it uses the types a 2000s application would have (``TINYINT(1)`` flags, ``CHAR(1)``
'Y'/'N', ``DECIMAL`` money, text dates), utf8mb4 with ``utf8mb4_general_ci`` by default, and no
foreign keys (legacy rows may point at nothing). The patient code columns use
``utf8mb4_bin`` so that codes differing only in case can coexist, as they do on SQLite.

The destination schema (PostgreSQL, or SQLite for the demo) is what the new system owns:
UUID keys, real booleans, ``timestamptz`` and foreign keys.

Statements bind every value. Values go to the driver as the legacy database stores them
(see ``_to_db``), through untyped ``sa.table`` constructs so that no SQLAlchemy type gets in
the way of a zero date.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from migrationsapp.demo.clinic_model import (
    ENTITIES,
    LEGACY_COLUMNS,
    LEGACY_TABLES,
    SOURCE_KEYS,
    ZERO_DATE,
    ClinicData,
    Row,
    row_key,
)

BATCH_SIZE = 2000
MYSQL_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"
MYSQL_BINARY_TEXT = "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"


def _legacy_ddl(*, mysql: bool) -> tuple[str, ...]:
    """The legacy tables, one shape on both: MariaDB/MySQL gets an AUTO_INCREMENT office id,
    binary patient codes, ``TINYINT(1)`` and an index on each reference column; SQLite an
    INTEGER office id (its rowid), and plain TINYINT (SQLAlchemy warns about TINYINT(1))."""
    serial = "INT NOT NULL AUTO_INCREMENT" if mysql else "INTEGER"
    code = f"VARCHAR(20) {MYSQL_BINARY_TEXT}" if mysql else "VARCHAR(20)"
    flag = "TINYINT(1)" if mysql else "TINYINT"
    options = f" {MYSQL_TABLE_OPTIONS}" if mysql else ""

    def index(name: str, column: str) -> str:
        return f",\n        KEY {name} ({column})" if mysql else ""

    return (
        f"""CREATE TABLE offices (
        id {serial},
        name VARCHAR(100) NOT NULL DEFAULT '',
        phone VARCHAR(40) NULL,
        opened DATE NULL,
        notes TEXT NULL,
        updated_at DATETIME NULL,
        PRIMARY KEY (id)
    ){options}""",
        f"""CREATE TABLE doctors (
        id INT NOT NULL,
        office_id INT NOT NULL,
        first_name VARCHAR(60) NOT NULL DEFAULT '',
        last_name VARCHAR(60) NOT NULL DEFAULT '',
        email VARCHAR(120) NULL,
        active_flag CHAR(1) NOT NULL DEFAULT 'Y',
        salary DECIMAL(10,2) NULL,
        hired DATETIME NULL,
        updated_at DATETIME NULL,
        PRIMARY KEY (id){index("idx_doctors_office", "office_id")}
    ){options}""",
        f"""CREATE TABLE patients (
        code {code} NOT NULL,
        doctor_id INT NULL,
        name VARCHAR(100) NULL,
        birth VARCHAR(20) NULL,
        vip {flag} NOT NULL DEFAULT 0,
        phone VARCHAR(40) NULL,
        updated_at DATETIME NULL,
        PRIMARY KEY (code){index("idx_patients_doctor", "doctor_id")}
    ){options}""",
        f"""CREATE TABLE appointments (
        patient_code {code} NOT NULL,
        seq INT NOT NULL,
        doctor_id INT NULL,
        starts DATETIME NOT NULL,
        note VARCHAR(200) NULL,
        updated_at DATETIME NULL,
        PRIMARY KEY (patient_code, seq){index("idx_appointments_doctor", "doctor_id")}
    ){options}""",
    )


_LEGACY_DDL = {"mysql": _legacy_ddl(mysql=True), "sqlite": _legacy_ddl(mysql=False)}


def _destination_ddl(uuid: str, timestamptz: str, false: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE office (
            id {uuid} PRIMARY KEY,
            legacy_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            phone TEXT,
            opened_on DATE
        )""",
        f"""CREATE TABLE doctor (
            id {uuid} PRIMARY KEY,
            office_id {uuid} NOT NULL REFERENCES office(id),
            legacy_id INTEGER NOT NULL,
            full_name TEXT NOT NULL,
            email TEXT,
            is_active BOOLEAN NOT NULL,
            salary NUMERIC(10,2),
            hired_at {timestamptz}
        )""",
        f"""CREATE TABLE patient (
            id {uuid} PRIMARY KEY,
            code TEXT NOT NULL,
            doctor_id {uuid} REFERENCES doctor(id),
            name TEXT NOT NULL,
            birth_date DATE,
            vip BOOLEAN NOT NULL DEFAULT {false},
            phone TEXT
        )""",
        f"""CREATE TABLE appointment (
            id {uuid} PRIMARY KEY,
            patient_id {uuid} NOT NULL REFERENCES patient(id),
            seq INTEGER NOT NULL,
            doctor_id {uuid} REFERENCES doctor(id),
            starts_at {timestamptz} NOT NULL,
            note TEXT
        )""",
        # Every foreign key has an index on its child column: a parent's delete then finds
        # its children by index instead of scanning the child table (the analysis warns
        # when such an index is missing).
        "CREATE INDEX doctor_office_idx ON doctor (office_id)",
        "CREATE INDEX patient_doctor_idx ON patient (doctor_id)",
        "CREATE INDEX appointment_patient_idx ON appointment (patient_id)",
        "CREATE INDEX appointment_doctor_idx ON appointment (doctor_id)",
    )


# SQLite accepts any type name: UUID is declared literally (stored as 36-character text) so a
# reader of the declared types sees a uuid. SQLAlchemy reflects an unknown name such as
# TIMESTAMPTZ as NUMERIC, so timestamps are DATETIME there (UTC wall-clock text).
_DESTINATION_DDL = {
    "postgresql": _destination_ddl("UUID", "TIMESTAMPTZ", "false"),
    "sqlite": _destination_ddl("UUID", "DATETIME", "0"),
}


def _dialect(engine: sa.Engine | sa.Connection) -> str:
    return engine.dialect.name


@contextlib.contextmanager
def legacy_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction on the legacy database, in a session that accepts legacy values.

    On MariaDB/MySQL the session's ``sql_mode`` is emptied (so zero dates are accepted, as the
    legacy application's connection would) and restored afterwards, so that the pooled
    connection goes back as it came.
    """
    with engine.connect() as conn:
        previous: str | None = None
        if _dialect(conn) == "mysql":
            previous = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
            conn.exec_driver_sql("SET SESSION sql_mode = ''")
            conn.commit()
        try:
            with conn.begin():
                yield conn
        finally:
            if previous is not None:
                # The connection may be broken already; the pool then discards it anyway.
                with contextlib.suppress(sa.exc.DBAPIError):
                    conn.execute(sa.text("SET SESSION sql_mode = :mode"), {"mode": previous})
                    conn.commit()


def create_legacy_schema(engine: sa.Engine) -> None:
    """Create the four legacy tables (MariaDB/MySQL or SQLite); they must not exist yet."""
    dialect = _dialect(engine)
    statements = _LEGACY_DDL.get(dialect)
    if statements is None:
        raise ValueError(f"the legacy clinic runs on MariaDB/MySQL or SQLite, not {dialect}")
    with legacy_transaction(engine) as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def drop_legacy_schema(engine: sa.Engine) -> None:
    """Drop the legacy tables if they exist (children first)."""
    with legacy_transaction(engine) as conn:
        for entity in reversed(ENTITIES):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {LEGACY_TABLES[entity]}")


def _enable_sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def enable_sqlite_foreign_keys(engine: sa.Engine) -> None:
    """Make every new connection of a SQLite ``engine`` enforce foreign keys (idempotent).

    SQLite checks foreign keys only on connections that ask for it. Connections the pool
    already holds are recycled so that none is left without the pragma.
    """
    if _dialect(engine) != "sqlite":
        return
    if not sa.event.contains(engine, "connect", _enable_sqlite_foreign_keys):
        sa.event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        engine.dispose()


def create_destination_schema(engine: sa.Engine) -> None:
    """Create the four destination tables (PostgreSQL or SQLite); they must not exist yet.

    On SQLite this also turns foreign keys on for the engine's connections.
    """
    dialect = _dialect(engine)
    if dialect not in _DESTINATION_DDL:
        raise ValueError(f"the clinic destination runs on PostgreSQL or SQLite, not {dialect}")
    enable_sqlite_foreign_keys(engine)
    with engine.begin() as conn:
        for statement in _DESTINATION_DDL[dialect]:
            conn.exec_driver_sql(statement)


def drop_destination_schema(engine: sa.Engine) -> None:
    """Drop the destination tables if they exist (children first)."""
    with engine.begin() as conn:
        for entity in reversed(ENTITIES):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {entity}")


# --------------------------------------------------------------------------- rows


def legacy_table(entity: str) -> sa.TableClause:
    """The legacy table of ``entity`` as an untyped construct (values pass through as given)."""
    return sa.table(LEGACY_TABLES[entity], *(sa.column(c) for c in LEGACY_COLUMNS[entity]))


def _to_db(dialect: str, value: Any) -> Any:
    """A Python value as the legacy database's driver should receive it.

    sqlite3 knows no Decimal and (from Python 3.12) no default datetime adapters, so SQLite
    gets text, the way a legacy SQLite application stores these values.
    """
    if dialect != "sqlite":
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _from_db(column: str, value: Any) -> Any:
    """A value read back from either legacy database, in the form ``ClinicData`` holds."""
    if value is None:
        return None
    if column == "opened":
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, str) and value != ZERO_DATE:
            return dt.date.fromisoformat(value)
        return value
    if column in ("hired", "starts", "updated_at") and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if column == "salary":
        # SQLite's NUMERIC affinity hands back 85000.5 (a float) or 85000 (an int).
        return Decimal(str(value)).quantize(Decimal("0.01"))
    return value


def _batches(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def insert_rows(conn: sa.Connection, entity: str, rows: Iterable[Row]) -> int:
    """Insert legacy rows with batched executemany; returns how many were inserted."""
    dialect = _dialect(conn)
    columns = LEGACY_COLUMNS[entity]
    prepared = [{c: _to_db(dialect, row.get(c)) for c in columns} for row in rows]
    statement = legacy_table(entity).insert()
    for batch in _batches(prepared, BATCH_SIZE):
        conn.execute(statement, list(batch))
    return len(prepared)


def _key_condition(table: sa.TableClause, entity: str) -> sa.ColumnElement[bool]:
    return sa.and_(*(table.c[c] == sa.bindparam(f"key_{c}") for c in SOURCE_KEYS[entity]))


def _key_params(dialect: str, entity: str, row: Row) -> dict[str, Any]:
    return {f"key_{c}": _to_db(dialect, row[c]) for c in SOURCE_KEYS[entity]}


def delete_rows(conn: sa.Connection, entity: str, rows: Iterable[Row]) -> None:
    """Delete legacy rows by their key columns."""
    dialect = _dialect(conn)
    params = [_key_params(dialect, entity, row) for row in rows]
    if params:
        table = legacy_table(entity)
        conn.execute(sa.delete(table).where(_key_condition(table, entity)), params)


def update_rows(conn: sa.Connection, entity: str, updates: Iterable[tuple[Row, Row]]) -> None:
    """Apply ``(row, changes)`` pairs: set the ``changes`` columns of the row with that key.

    Updates that set the same columns share one executemany.
    """
    dialect = _dialect(conn)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row, changes in updates:
        params = _key_params(dialect, entity, row)
        params.update({f"set_{c}": _to_db(dialect, v) for c, v in changes.items()})
        groups.setdefault(tuple(sorted(changes)), []).append(params)
    table = legacy_table(entity)
    for columns, params_list in groups.items():
        statement = (
            sa.update(table)
            .where(_key_condition(table, entity))
            .values({c: sa.bindparam(f"set_{c}") for c in columns})
        )
        conn.execute(statement, params_list)


def load_legacy(engine: sa.Engine, data: ClinicData) -> dict[str, int]:
    """Insert every row of ``data`` into the legacy tables, parents first.

    Returns the number of rows inserted per entity.
    """
    with legacy_transaction(engine) as conn:
        return {
            entity: insert_rows(conn, entity, data.rows[entity].values()) for entity in ENTITIES
        }


def read_legacy(engine: sa.Engine) -> dict[str, dict[str, Row]]:
    """Every legacy row, keyed like ``ClinicData.rows`` and with the same value types."""
    out: dict[str, dict[str, Row]] = {}
    with legacy_transaction(engine) as conn:
        for entity in ENTITIES:
            columns = LEGACY_COLUMNS[entity]
            result = conn.execute(sa.select(legacy_table(entity)))
            rows = ({c: _from_db(c, v) for c, v in zip(columns, r, strict=True)} for r in result)
            out[entity] = {row_key(entity, row): row for row in rows}
    return out
