"""What a table looks like: columns, their kind, nullability, defaults and primary key;
and which foreign keys into it no index serves (each delete of a parent row scans the child).

Introspection goes through SQLAlchemy's inspector, the same for MySQL/MariaDB, PostgreSQL
and SQLite, and folds each database's types into a small set of *kinds* that the rest of
the engine reasons about (``text``, ``integer``, ``datetime`` …). The SQL type as the
database spells it is kept alongside, for messages and for people.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql


@dataclass(frozen=True)
class ColumnInfo:
    """One column as introspected. ``kind`` is one of ``KINDS``."""

    name: str
    kind: str
    sql_type: str
    nullable: bool
    has_default: bool
    primary_key: bool
    scale: int | None = None
    autoincrement: bool = False


@dataclass(frozen=True)
class TableInfo:
    """One table (or view): its columns in table order and its primary key."""

    name: str
    schema: str | None
    columns: dict[str, ColumnInfo]
    primary_key: tuple[str, ...]

    def column(self, name: str) -> ColumnInfo | None:
        return self.columns.get(name)


def kind_of(dialect: str, sa_type: sa.types.TypeEngine[Any]) -> str:
    """The kind of a reflected SQLAlchemy type on the given dialect."""
    # Order matters: Float subclasses Numeric, Boolean flags hide in integer types.
    if isinstance(sa_type, sa.Boolean):
        return "boolean"
    if dialect == "mysql":
        # MySQL has no boolean type: BOOLEAN is an alias of TINYINT(1), and legacy schemas
        # also flag with BIT(1). Both are read as 0/1.
        if isinstance(sa_type, mysql.TINYINT) and sa_type.display_width == 1:
            return "boolean"
        if isinstance(sa_type, mysql.BIT):
            return "boolean" if sa_type.length == 1 else "integer"
        if isinstance(sa_type, mysql.YEAR):
            return "integer"
        # MySQL TIMESTAMP is stored in UTC and converted to the session zone, which
        # diffmig pins to '+00:00': the values are UTC instants, read back as aware.
        if isinstance(sa_type, mysql.TIMESTAMP):
            return "datetime_tz"
    if isinstance(sa_type, sa.Integer):
        return "integer"
    if isinstance(sa_type, sa.Float):
        return "float"
    if isinstance(sa_type, sa.Numeric):
        return "numeric"
    if isinstance(sa_type, sa.DateTime):
        return "datetime_tz" if getattr(sa_type, "timezone", False) else "datetime"
    if isinstance(sa_type, sa.Date):
        return "date"
    if isinstance(sa_type, sa.Time):
        return "time"
    if isinstance(sa_type, sa.Uuid | postgresql.UUID):
        return "uuid"
    if isinstance(sa_type, sa.JSON):
        return "json"
    if isinstance(sa_type, sa.LargeBinary | sa.types._Binary):
        return "bytes"
    if isinstance(sa_type, sa.String):
        return "text"
    return "other"


def _sql_type(sa_type: sa.types.TypeEngine[Any], dialect: sa.engine.Dialect) -> str:
    try:
        return str(sa_type.compile(dialect=dialect))
    except sa.exc.CompileError:
        # NullType (an SQLite column without a declared type) has no DDL spelling.
        return "" if isinstance(sa_type, sa.types.NullType) else type(sa_type).__name__


def _mariadb_json_columns(conn: sa.Connection, schema: str | None, table: str) -> set[str]:
    """MariaDB's JSON is LONGTEXT plus a ``json_valid()`` check: find those columns."""
    rows = conn.execute(
        sa.text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = COALESCE(:schema, DATABASE()) "
            "AND TABLE_NAME = :table AND LEVEL = 'Column'"
        ),
        {"schema": schema, "table": table},
    )
    found = set()
    for (clause,) in rows:
        text = str(clause).strip()
        if text.startswith("json_valid(`") and text.endswith("`)"):
            found.add(text[len("json_valid(`") : -2].replace("``", "`"))
    return found


def _declared_types(conn: sa.Connection, dialect_name: str, schema: str | None, table: str) -> dict:
    """Column -> type as declared, for types SQLAlchemy does not know (POINT, PostGIS …)."""
    if dialect_name == "mysql":
        sql = (
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table"
        )
    elif dialect_name == "postgresql":
        sql = (
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = CAST(CAST(:qualified AS text) AS regclass) "
            "AND a.attnum > 0 AND NOT a.attisdropped"
        )
    else:
        return {}
    preparer = conn.dialect.identifier_preparer
    qualified = (
        preparer.quote(table)
        if schema is None
        else preparer.quote_schema(schema) + "." + preparer.quote(table)
    )
    rows = conn.execute(sa.text(sql), {"schema": schema, "table": table, "qualified": qualified})
    return {str(name): str(declared).upper() for name, declared in rows}


def _sqlite_uuid_columns(conn: sa.Connection, table: str) -> set[str]:
    """SQLite columns whose declared type is UUID (PRAGMA table_info keeps the declaration)."""
    quoted = conn.dialect.identifier_preparer.quote(table)
    rows = conn.exec_driver_sql(f"PRAGMA table_info({quoted})").fetchall()
    return {row[1] for row in rows if str(row[2]).strip().upper() == "UUID"}


def _column_name(dialect_name: str, reflected: str) -> str:
    """A reflected column name as the database spells it.

    SQLAlchemy's MySQL reflection reads SHOW CREATE TABLE and leaves a backtick in a column
    name doubled, as it is quoted there: a column named a`b comes back as a``b.
    """
    return reflected.replace("``", "`") if dialect_name == "mysql" else reflected


def introspect_table(
    conn: sa.Connection, dialect_name: str, name: str, schema: str | None
) -> TableInfo | None:
    """The table (or view) ``name`` in ``schema``, or None when it does not exist."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(name, schema=schema):  # views count as tables here
        return None
    with warnings.catch_warnings():
        # "Did not recognize type 'point'": such columns are kind "other", by design.
        warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
        reflected = inspector.get_columns(name, schema=schema)
    declared: dict[str, str] | None = None
    try:
        pk = tuple(
            _column_name(dialect_name, c)
            for c in inspector.get_pk_constraint(name, schema=schema)["constrained_columns"] or ()
        )
    except NotImplementedError:  # views on some dialects
        pk = ()
    json_columns: set[str] = set()
    declared_uuid: set[str] = set()
    if dialect_name == "sqlite":
        declared_uuid = _sqlite_uuid_columns(conn, name)
    if dialect_name == "mysql" and getattr(conn.dialect, "is_mariadb", False):
        json_columns = _mariadb_json_columns(conn, schema, name)

    columns: dict[str, ColumnInfo] = {}
    for col in reflected:
        sa_type = col["type"]
        col_name = _column_name(dialect_name, col["name"])
        kind = kind_of(dialect_name, sa_type)
        sql_type = _sql_type(sa_type, conn.dialect)
        if dialect_name == "sqlite" and col_name in declared_uuid:
            # SQLite has no UUID type: a column declared UUID holds the text form, and
            # SQLAlchemy would reflect it as NUMERIC (its affinity).
            kind, sql_type = "uuid", "UUID"
        if isinstance(sa_type, sa.types.NullType) and dialect_name != "sqlite":
            if declared is None:
                declared = _declared_types(conn, dialect_name, schema, name)
            sql_type = declared.get(col_name, sql_type)
        if col_name in json_columns:
            kind, sql_type = "json", "JSON"
        autoincrement = col.get("autoincrement") is True or bool(col.get("identity"))
        nullable = bool(col["nullable"])
        if dialect_name == "sqlite" and pk == (col_name,) and sql_type.upper() == "INTEGER":
            # An INTEGER PRIMARY KEY is SQLite's rowid: never null, assigned when omitted.
            autoincrement, nullable = True, False
        if col_name in pk and dialect_name != "sqlite":
            nullable = False
        columns[col_name] = ColumnInfo(
            name=col_name,
            kind=kind,
            sql_type=sql_type,
            nullable=nullable,
            has_default=(
                col.get("default") is not None or autoincrement or bool(col.get("computed"))
            ),
            primary_key=col_name in pk,
            scale=getattr(sa_type, "scale", None) if kind == "numeric" else None,
            autoincrement=autoincrement,
        )
    return TableInfo(name=name, schema=schema, columns=columns, primary_key=pk)


# -- foreign keys into a table that no index serves -----------------------------------------


@dataclass(frozen=True)
class UnindexedReference:
    """A foreign key into a table whose child columns no index leads with: every row deleted
    from the parent makes the database scan the child table for rows that still point at it.
    ``child`` is the child table as the database names it (schema-qualified when not on the
    search path); ``create_index`` is the statement that would serve the key."""

    constraint: str
    child: str
    columns: tuple[str, ...]
    create_index: str


# Foreign keys into the parent, with the child columns in key order, whose columns are not
# the leading columns of any valid, non-partial index of the child (in any order).
_PG_UNINDEXED = """
SELECT c.conname,
       c.conrelid::regclass::text,
       array_agg(a.attname::text ORDER BY k.ord)
FROM pg_constraint c
CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
WHERE c.contype = 'f'
  AND c.confrelid = CAST(CAST(:parent AS text) AS regclass)
  AND NOT EXISTS (
      SELECT 1 FROM pg_index i
      WHERE i.indrelid = c.conrelid AND i.indisvalid AND i.indpred IS NULL
        AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
  )
GROUP BY c.oid, c.conname, c.conrelid
ORDER BY 2, 1
"""


def unindexed_references(
    conn: sa.Connection, dialect_name: str, table: str, schema: str | None
) -> list[UnindexedReference]:
    """The foreign keys into ``table`` whose child columns have no index (PostgreSQL and
    SQLite; MySQL/MariaDB index every foreign key themselves)."""
    preparer = conn.dialect.identifier_preparer
    if dialect_name == "postgresql":
        parent = (
            preparer.quote(table)
            if schema is None
            else preparer.quote_schema(schema) + "." + preparer.quote(table)
        )
        # regclass text: the child's name quoted as needed, schema-qualified when the
        # search path does not find it.
        rows = conn.execute(sa.text(_PG_UNINDEXED), {"parent": parent})
        return [
            _reference(preparer, str(name), str(child), tuple(columns))
            for name, child, columns in rows
        ]
    if dialect_name == "sqlite":
        return _sqlite_unindexed(conn, table)
    return []


def _reference(
    preparer: Any, name: str, child: str, columns: tuple[str, ...]
) -> UnindexedReference:
    quoted = ", ".join(preparer.quote(c) for c in columns)
    return UnindexedReference(
        constraint=name,
        child=child,
        columns=columns,
        create_index=f"CREATE INDEX ON {child} ({quoted})",
    )


def _sqlite_unindexed(conn: sa.Connection, parent: str) -> list[UnindexedReference]:
    preparer = conn.dialect.identifier_preparer
    tables = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ).fetchall()
    found = []
    for (child,) in tables:
        quoted = preparer.quote(child)
        keys: dict[int, list[tuple[int, str]]] = {}
        for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({quoted})"):
            key_id, seq, target, column = row[0], row[1], row[2], row[3]
            if str(target).lower() == parent.lower():
                keys.setdefault(key_id, []).append((seq, column))
        if not keys:
            continue
        led = _sqlite_leading_columns(conn, child)
        for _, pairs in sorted(keys.items()):
            columns = tuple(column for _, column in sorted(pairs))
            if not any(set(lead[: len(columns)]) == set(columns) for lead in led):
                name = f"{child}_{'_'.join(columns)}_fkey"  # SQLite keys are unnamed
                found.append(_reference(preparer, name, quoted, columns))
    return found


def _sqlite_leading_columns(conn: sa.Connection, table: str) -> list[tuple[str, ...]]:
    """The column lists of ``table``'s indexes (partial ones left out), and its rowid alias."""
    quoted = conn.dialect.identifier_preparer.quote(table)
    leads: list[tuple[str, ...]] = []
    for row in conn.exec_driver_sql(f"PRAGMA index_list({quoted})"):
        name, partial = row[1], row[4]
        if partial:
            continue
        info = conn.exec_driver_sql(
            f"PRAGMA index_info({conn.dialect.identifier_preparer.quote(name)})"
        ).fetchall()
        leads.append(tuple(str(r[2]) for r in sorted(info)))
    # An INTEGER PRIMARY KEY is the rowid itself: looked up without an index.
    pk = [r for r in conn.exec_driver_sql(f"PRAGMA table_info({quoted})") if r[5]]
    if len(pk) == 1 and str(pk[0][2]).strip().upper() == "INTEGER":
        leads.append((str(pk[0][1]),))
    return leads
