"""Opening the databases diffmig reads from and writes to, under the connection policy.

A connection is a SQLAlchemy URL (``mysql://…``, ``postgresql://…``, ``sqlite:///…``) whose
``${DIFFMIG_…}`` placeholders are filled from the environment. Before anything connects,
the URL is checked against the policy (``connection_policy.py``): allowed hosts only, SQLite
files only under the SQLite root, a short list of driver options, never the control
database. A stored password joins the URL object only here, never its text. Then the
URL is pinned to the drivers diffmig is written for (mysqlclient or PyMySQL, as
``mysql_drivers.py`` chooses; psycopg 3; sqlite3) and each session is set up so that
values read back do not depend on server defaults (UTC session zone, ISO dates, exact
float text).

``Database`` is the handle the rest of the engine uses: introspection (``introspect.py``)
and snapshot reads, content hashes and fetch-by-key (``reads.py``) hang off it.
"""

from __future__ import annotations

import os
import threading
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from migrationsapp.engine import mysql_drivers, reads
from migrationsapp.engine.connection_policy import (
    ConnectionPolicy,
    ControlDatabase,
    check_url,
    checked_url,
)
from migrationsapp.engine.connection_urls import (
    expand_placeholders,
    expand_url,
    placeholder_names,
    redact_url,
)
from migrationsapp.engine.convert import KINDS
from migrationsapp.engine.errors import ConfigurationError, SourceUnavailableError
from migrationsapp.engine.introspect import ColumnInfo, TableInfo, introspect_table

__all__ = [
    "KINDS",
    "ColumnInfo",
    "ConnectionPolicy",
    "ConnectionSpec",
    "ControlDatabase",
    "Database",
    "TableInfo",
    "check_url",
    "expand_placeholders",
    "expand_url",
    "open_database",
    "placeholder_names",
    "redact_url",
    "resolved_url",
]


@dataclass(frozen=True)
class ConnectionSpec:
    """A named connection as configured: its URL may still hold ``${DIFFMIG_…}``.

    A stored password travels apart from the URL (and out of ``repr``), and is put into
    the URL object only when connecting.
    """

    name: str
    url: str
    timezone: str = "UTC"
    schema: str | None = None
    password: str = field(default="", repr=False)


# --- opening ----------------------------------------------------------------------------

# Long reads stream for as long as the consumer takes between batches; the server must not
# give up on a slow reader (net_write_timeout) or on a long statement.
MYSQL_NET_TIMEOUT_S = 3600
CONNECT_TIMEOUT_S = 10


def _mysql_session_setup(dbapi_conn: Any, _record: Any) -> None:
    is_mariadb = "mariadb" in str(dbapi_conn.get_server_info()).lower()
    statement_limit = "max_statement_time" if is_mariadb else "max_execution_time"
    with dbapi_conn.cursor() as cur:
        # UTC session: TIMESTAMP columns read back as UTC, whatever the server's own zone.
        cur.execute(
            "SET SESSION time_zone = '+00:00', "
            f"SESSION net_write_timeout = {MYSQL_NET_TIMEOUT_S}, "
            f"SESSION net_read_timeout = {MYSQL_NET_TIMEOUT_S}, "
            f"SESSION {statement_limit} = 0"
        )


def _postgresql_session_setup(dbapi_conn: Any, _record: Any) -> None:
    # The content hash is computed over each value's text, so that text must not depend
    # on server or role defaults: UTC for timestamptz, ISO dates, shortest exact floats.
    with dbapi_conn.cursor() as cur:
        cur.execute(
            "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; "
            "SET extra_float_digits = 1; SET bytea_output = 'hex'"
        )
    dbapi_conn.commit()  # a SET inside a rolled-back transaction would be undone


# libpq reads ~/.pgpass, and a client certificate from ~/.postgresql/, when a URL does not
# say otherwise: ambient credentials of the account diffmig runs as, which would reach any
# database that trusts them. A password file path that cannot exist (a file below
# /dev/null) turns the first off silently; sslcertmode=disable the second.
_NO_PASSFILE = os.path.join(os.devnull, "diffmig-no-passfile")


def _connect_args(backend: str, url: sa.URL) -> dict[str, Any]:
    connect_args: dict[str, Any] = {}
    query_keys = {k.lower() for k in url.query}
    if backend == "mysql":
        connect_args.update(mysql_drivers.connect_args(url.get_driver_name()))
    elif backend == "postgresql":
        if "connect_timeout" not in query_keys:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in query_keys:
            connect_args["application_name"] = "diffmig"
        connect_args["passfile"] = _NO_PASSFILE
        connect_args["sslcertmode"] = "disable"
        if url.password is None:
            # An empty password, not none: libpq would fall back to PGPASSWORD.
            connect_args["password"] = ""
    return connect_args


def resolved_url(
    spec: ConnectionSpec, policy: ConnectionPolicy, environ: Mapping[str, str] | None = None
) -> sa.URL:
    """``spec``'s URL expanded, checked and given its stored password: what is connected to."""
    try:
        url = checked_url(expand_url(spec.url, os.environ if environ is None else environ), policy)
    except ConfigurationError as exc:
        raise ConfigurationError(f"connection {spec.name!r}: {exc}", hint=exc.hint) from None
    if spec.password:
        if url.password is not None:
            raise ConfigurationError(
                f"connection {spec.name!r}: its URL gives a password and one is stored too",
                hint="Clear the stored password, or take the password out of the URL.",
            )
        url = url.set(password=spec.password)
    return url


def open_database(
    spec: ConnectionSpec, policy: ConnectionPolicy, environ: Mapping[str, str] | None = None
) -> Database:
    """Expand, check and open ``spec``. Connects lazily: reachability shows on first use."""
    url = resolved_url(spec, policy, environ)
    try:
        zone = zoneinfo.ZoneInfo(spec.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"connection {spec.name!r}: timezone {spec.timezone!r} is not a known IANA zone "
            "(e.g. UTC, Europe/Berlin, America/New_York)"
        ) from exc

    backend = url.get_backend_name()
    engine_args: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "mysql":
        engine_args["pool_recycle"] = 3600  # below the usual wait_timeout
    engine = sa.create_engine(url, connect_args=_connect_args(backend, url), **engine_args)
    if backend == "mysql":
        event.listen(engine, "connect", _mysql_session_setup)
    elif backend == "postgresql":
        event.listen(engine, "connect", _postgresql_session_setup)
    return Database(
        name=spec.name,
        dialect=backend,
        timezone=zone,
        schema=spec.schema,
        engine=engine,
        display_url=redact_url(url.render_as_string(hide_password=True)),
    )


class Database:
    """An open connection (an engine and its pool) with introspection and snapshot reads."""

    def __init__(
        self,
        *,
        name: str,
        dialect: str,
        timezone: zoneinfo.ZoneInfo,
        schema: str | None,
        engine: sa.Engine,
        display_url: str,
    ) -> None:
        self.name = name
        self.dialect = dialect
        self.timezone = timezone
        self.schema = schema
        self.engine = engine
        self.display_url = display_url
        self._tables: dict[str, TableInfo] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Database {self.name!r} {self.display_url}>"

    # -- connections --

    def _is_connection_error(self, exc: BaseException) -> bool:
        if isinstance(exc, sa.exc.DBAPIError):
            return exc.connection_invalidated or isinstance(
                exc, sa.exc.OperationalError | sa.exc.InterfaceError
            )
        dbapi = getattr(self.engine.dialect, "loaded_dbapi", None)
        return dbapi is not None and isinstance(exc, dbapi.OperationalError | dbapi.InterfaceError)

    def unavailable(self, exc: BaseException, *, doing: str) -> SourceUnavailableError:
        """A SourceUnavailableError naming this connection, for a driver error."""
        cause = getattr(exc, "orig", None) or exc
        return SourceUnavailableError(
            f"database {self.name!r} ({self.display_url}): {doing} failed: {cause}",
            hint="check that the database is up and reachable, then resume the run",
        )

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection; a dropped or refused connection becomes SourceUnavailableError."""
        try:
            conn = self.engine.connect()
        except sa.exc.DBAPIError as exc:
            raise self.unavailable(exc, doing="connecting") from exc
        try:
            yield conn
        except Exception as exc:
            if self._is_connection_error(exc):
                raise self.unavailable(exc, doing="reading") from exc
            raise
        finally:
            conn.close()

    @contextmanager
    def snapshot(self) -> Iterator[sa.Connection]:
        """A read-only transaction that sees one consistent state of the whole database."""
        with self.connect() as conn:
            if self.dialect == "mysql":
                # WITH CONSISTENT SNAPSHOT only holds under REPEATABLE READ, which a server
                # may not default to. (MyISAM tables have no snapshot at all.)
                conn.execution_options(isolation_level="REPEATABLE READ")
                conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            elif self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            else:
                # sqlite3 starts transactions only for writes; a read needs an explicit BEGIN.
                conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                if not conn.invalidated:
                    conn.rollback()

    def close(self) -> None:
        self.engine.dispose()

    # -- metadata --

    def server_version(self) -> str:
        with self.connect() as conn:
            if self.dialect == "mysql":
                raw = str(conn.exec_driver_sql("SELECT VERSION()").scalar())
                product = "MariaDB" if "mariadb" in raw.lower() else "MySQL"
                return f"{product} {raw.split('-')[0]}"
            if self.dialect == "postgresql":
                raw = str(conn.exec_driver_sql("SHOW server_version").scalar())
                return f"PostgreSQL {raw.split()[0]}"
            return f"SQLite {conn.exec_driver_sql('SELECT sqlite_version()').scalar()}"

    def table_names(self) -> list[str]:
        """Tables and views of the connection's schema, sorted."""
        with self.connect() as conn:
            inspector = sa.inspect(conn)
            names = set(inspector.get_table_names(schema=self.schema))
            names.update(inspector.get_view_names(schema=self.schema))
        return sorted(names)

    def _locations(self, name: str) -> list[tuple[str | None, str]]:
        # An unqualified name lives in `schema`; "other.table" names its own schema.
        locations: list[tuple[str | None, str]] = [(self.schema, name)]
        if "." in name:
            schema, table = name.split(".", 1)
            locations.append((schema, table))
        return locations

    def table(self, name: str) -> TableInfo | None:
        """The introspected table (cached), or None when it does not exist."""
        with self._lock:
            cached = self._tables.get(name)
        if cached is not None:
            return cached
        with self.connect() as conn:
            for schema, table in self._locations(name):
                info = introspect_table(conn, self.dialect, table, schema)
                if info is not None:
                    # Only hits are cached: a table created later is found on the next call.
                    with self._lock:
                        self._tables[name] = info
                    return info
        return None

    def require_table(self, name: str) -> TableInfo:
        info = self.table(name)
        if info is None:
            where = f" in schema {self.schema!r}" if self.schema else ""
            raise ConfigurationError(f"database {self.name!r} has no table {name!r}{where}")
        return info

    def count_rows(self, table: str) -> int:
        info = self.require_table(table)
        stmt = sa.select(sa.func.count()).select_from(sa.table(info.name, schema=info.schema))
        with self.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    # -- reads (see reads.py) --

    def stream_key_hashes(
        self,
        table: str,
        key_columns: Sequence[str],
        hashed_columns: Sequence[str],
        *,
        batch_size: int = 10_000,
    ) -> Iterator[list[tuple[tuple, str]]]:
        """Every row's typed key and content hash, from one snapshot, in batches."""
        return reads.stream_key_hashes(
            self, table, key_columns, hashed_columns, batch_size=batch_size
        )

    def stream_rows(
        self, table: str, columns: Sequence[str], *, batch_size: int = 10_000
    ) -> Iterator[list[dict[str, Any]]]:
        """Every row's ``columns``, from one snapshot, in batches."""
        return reads.stream_rows(self, table, columns, batch_size=batch_size)

    def fetch_rows(
        self,
        table: str,
        key_columns: Sequence[str],
        keys: Sequence[tuple],
        columns: Sequence[str],
    ) -> dict[tuple, dict[str, Any]]:
        """The rows whose key matches one of ``keys`` exactly, keyed by the key as stored."""
        return reads.fetch_rows(self, table, key_columns, keys, columns)

    def stream_key_hashes_by_timestamp(
        self,
        table: str,
        key_columns: Sequence[str],
        hashed_columns: Sequence[str],
        timestamp_column: str,
        *,
        since: Any = None,
        after_key: Sequence[Any] | None = None,
        batch_size: int = 10_000,
    ) -> Iterator[list[tuple[tuple, str, Any]]]:
        """``(key, hash, timestamp)`` of a timestamp window, ordered by (timestamp, key)."""
        return reads.stream_key_hashes_by_timestamp(
            self,
            table,
            key_columns,
            hashed_columns,
            timestamp_column,
            since=since,
            after_key=after_key,
            batch_size=batch_size,
        )

    def fetch_key_hashes(
        self,
        table: str,
        key_columns: Sequence[str],
        hashed_columns: Sequence[str],
        keys: Sequence[Sequence[Any]],
    ) -> dict[tuple, str]:
        """The content hash of the rows of these keys (exact matches), keyed as stored."""
        return reads.fetch_key_hashes(self, table, key_columns, hashed_columns, keys)
