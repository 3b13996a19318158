"""Opening the databases diffmig reads from and writes to, under the connection policy.

A connection is a SQLAlchemy URL (``mysql://…``, ``postgresql://…``, ``sqlite:///…``) whose
``${DIFFMIG_…}`` placeholders are filled from the environment. Before anything connects,
the URL is checked against the policy: allowed hosts only, SQLite files only under the
SQLite root, and no driver option that reads (or writes) files on this machine. Then the
URL is pinned to the drivers diffmig is written for (PyMySQL, psycopg 3, sqlite3) and each
session is set up so that values read back do not depend on server defaults (UTC session
zone, ISO dates, exact float text).

``Database`` is the handle the rest of the engine uses: introspection (``introspect.py``)
and snapshot reads, content hashes and fetch-by-key (``reads.py``) hang off it.
"""

from __future__ import annotations

import os
import pathlib
import re
import threading
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from migrationsapp.engine import reads
from migrationsapp.engine.convert import KINDS
from migrationsapp.engine.errors import ConfigurationError, SourceUnavailableError
from migrationsapp.engine.introspect import ColumnInfo, TableInfo, introspect_table

__all__ = [
    "KINDS",
    "ColumnInfo",
    "ConnectionPolicy",
    "ConnectionSpec",
    "Database",
    "TableInfo",
    "check_url",
    "expand_placeholders",
    "open_database",
    "placeholder_names",
    "redact_url",
]


@dataclass(frozen=True)
class ConnectionSpec:
    """A named connection as configured: its URL may still hold ``${DIFFMIG_…}``."""

    name: str
    url: str
    timezone: str = "UTC"
    schema: str | None = None


@dataclass(frozen=True)
class ConnectionPolicy:
    """Where connections may point (``DIFFMIG_ALLOWED_DB_HOSTS``, ``DIFFMIG_SQLITE_ROOT``)."""

    allowed_hosts: tuple[str, ...]
    sqlite_root: pathlib.Path


# --- placeholders --------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALLOWED_PREFIX = "DIFFMIG_"
# DIFFMIG_ variables that are diffmig's own secrets, not connection settings: a URL could
# echo them back in a driver error ("Access denied for user '<value>'").
_RESERVED_VARIABLES = {"DIFFMIG_FERNET_KEYS": "it holds diffmig's own encryption keys"}


def placeholder_names(text: str) -> list[str]:
    """The ``${NAME}`` names in ``text``, in order of first appearance, without repeats."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(text)))


def _check_variable(name: str) -> None:
    if not _VARIABLE_NAME.fullmatch(name):
        raise ConfigurationError(f"${{{name}}} is not a valid placeholder: write ${{DIFFMIG_NAME}}")
    if not name.startswith(_ALLOWED_PREFIX):
        raise ConfigurationError(
            f"${{{name}}} is refused: only {_ALLOWED_PREFIX} variables may be used"
        )
    if name in _RESERVED_VARIABLES:
        raise ConfigurationError(f"${{{name}}} is refused: {_RESERVED_VARIABLES[name]}")


def expand_placeholders(text: str, environ: Mapping[str, str]) -> str:
    """Fill every ``${DIFFMIG_NAME}`` from ``environ``; refuse any other or unset name.

    One pass: a value that itself contains ``${…}`` is not expanded again.
    """
    for name in placeholder_names(text):
        _check_variable(name)
        if name not in environ:
            raise ConfigurationError(
                f"${{{name}}} is not set: define {name} in the environment diffmig runs in"
            )
    if "${" in _PLACEHOLDER.sub("", text):
        raise ConfigurationError(f"{redact_url(text)!r} has an unterminated ${{…}} placeholder")
    return _PLACEHOLDER.sub(lambda m: environ[m.group(1)], text)


# --- URL checks -------------------------------------------------------------------------

# scheme -> (backend, the one driver diffmig uses for it)
_SCHEMES = {
    "mysql": ("mysql", "pymysql"),
    "mariadb": ("mysql", "pymysql"),
    "postgresql": ("postgresql", "psycopg"),
    "postgres": ("postgresql", "psycopg"),
    "sqlite": ("sqlite", "pysqlite"),
}

# Query options refused whatever the database, each with the reason given to the user.
_REFUSED_OPTIONS = {
    "local_infile": "it lets the server read files on this machine (LOAD DATA LOCAL)",
    "read_default_file": "it makes the driver read an option file on this machine",
    "read_default_group": "it makes the driver read an option file on this machine",
    "init_command": "it runs SQL chosen by the URL on every connection",
    "passfile": "it makes the driver read a password file on this machine",
    "service": "it makes the driver read a service file on this machine",
    "servicefile": "it makes the driver read a service file on this machine",
    "sslkeylogfile": "it makes the driver write a file on this machine",
    "uri": "diffmig opens SQLite files itself: give the path, not a file: URI",
}
# Query options that choose where to connect: they pass the same host check as the URL's.
_HOST_OPTIONS = {"host", "hostaddr", "unix_socket"}

_USERINFO_PASSWORD = re.compile(r"^(?P<head>[\w+]+://[^:/]*):(?P<password>[^@]*)@")
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd)=)[^&#]*")


def redact_url(url: str) -> str:
    """The URL with any password (in the user part or a query option) replaced by ``***``."""
    # Same grammar as SQLAlchemy's make_url, so what it would take as the password is hidden.
    url = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}:***@", url, count=1)
    return _QUERY_PASSWORD.sub(r"\1***", url)


def check_url(url: str, policy: ConnectionPolicy) -> None:
    """Refuse a URL the policy does not allow (raises ConfigurationError)."""
    _checked_url(url, policy)


def _option_values(value: str | Sequence[str]) -> list[str]:
    values = [value] if isinstance(value, str) else list(value)
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def _host_only(value: str) -> str:
    """``db.example:5432`` -> ``db.example``; ``[::1]:5432`` -> ``::1``; ``::1`` stays."""
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _check_host(host: str | None, policy: ConnectionPolicy, shown: str) -> None:
    allowed = {h.strip().lower().strip("[]") for h in policy.allowed_hosts if h.strip()}
    # No host, or a socket path, means this machine, which is "localhost" to the policy.
    effective = (host or "localhost").strip().lower().strip("[]")
    if effective.startswith("/"):
        effective = "localhost"
    if effective not in allowed:
        raise ConfigurationError(
            f"host {host!r} in {shown} is refused: it is not in DIFFMIG_ALLOWED_DB_HOSTS "
            f"({', '.join(sorted(allowed)) or 'empty'})"
        )


def _sqlite_path(database: str | None, policy: ConnectionPolicy, shown: str) -> pathlib.Path:
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ConfigurationError(
            f"{shown} is refused: a SQLite connection needs a file path under "
            "DIFFMIG_SQLITE_ROOT, not an in-memory database or a file: URI"
        )
    path = pathlib.Path(database)
    # resolve() follows symlinks and folds "..", so the check is on the file really opened.
    resolved = (path if path.is_absolute() else pathlib.Path.cwd() / path).resolve()
    root = pathlib.Path(policy.sqlite_root).resolve()
    if not resolved.is_relative_to(root):
        raise ConfigurationError(
            f"SQLite file {database!r} resolves to {resolved}, which is outside "
            f"DIFFMIG_SQLITE_ROOT ({root})"
        )
    return resolved


def _checked_url(text: str, policy: ConnectionPolicy) -> URL:
    """Check ``text`` and return it as the SQLAlchemy URL diffmig connects with."""
    shown = redact_url(text)
    if "${" in text:
        raise ConfigurationError(f"{shown} still holds a ${{…}} placeholder: expand it first")
    try:
        url = make_url(text)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ConfigurationError(
            f"{shown} is not a database URL: write e.g. mysql://user:pw@host:3306/db, "
            "postgresql://user@host:5432/db or sqlite:///path/to/file.db"
        ) from exc
    scheme, _, driver = url.drivername.lower().partition("+")
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"{shown}: scheme {url.drivername!r} is not supported "
            "(use mysql://, mariadb://, postgresql:// or sqlite:///)"
        )
    backend, our_driver = _SCHEMES[scheme]
    if driver and driver != our_driver:
        raise ConfigurationError(
            f"{shown}: driver {driver!r} is not supported; diffmig uses {our_driver} "
            f"(write {scheme}:// or {scheme}+{our_driver}://)"
        )
    for key, value in url.query.items():
        lowered = key.lower()
        if lowered in _REFUSED_OPTIONS:
            raise ConfigurationError(
                f"option {key!r} in {shown} is refused: {_REFUSED_OPTIONS[lowered]}"
            )
        if lowered in _HOST_OPTIONS:
            for item in _option_values(value):
                host = "localhost" if lowered == "unix_socket" else _host_only(item)
                _check_host(host, policy, shown)

    if backend == "sqlite":
        path = _sqlite_path(url.database, policy, shown)
        return url.set(drivername="sqlite+pysqlite", database=str(path))

    _check_host(url.host, policy, shown)
    if backend == "postgresql" and url.database and ("=" in url.database or "://" in url.database):
        # libpq may read a dbname that looks like a connection string as one, host and all.
        raise ConfigurationError(f"{shown}: database name {url.database!r} is refused")
    url = url.set(drivername=f"{backend}+{our_driver}")
    if backend == "mysql" and not any(k.lower() == "charset" for k in url.query):
        # utf8mb4, not MySQL's 3-byte utf8: emoji and other astral characters survive.
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


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


def open_database(
    spec: ConnectionSpec, policy: ConnectionPolicy, environ: Mapping[str, str] | None = None
) -> Database:
    """Expand, check and open ``spec``. Connects lazily: reachability shows on first use."""
    text = expand_placeholders(spec.url, os.environ if environ is None else environ)
    try:
        url = _checked_url(text, policy)
    except ConfigurationError as exc:
        raise ConfigurationError(f"connection {spec.name!r}: {exc}") from exc
    try:
        zone = zoneinfo.ZoneInfo(spec.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"connection {spec.name!r}: timezone {spec.timezone!r} is not a known IANA zone "
            "(e.g. UTC, Europe/Berlin, America/New_York)"
        ) from exc

    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    engine_args: dict[str, Any] = {"pool_pre_ping": True}
    query_keys = {k.lower() for k in url.query}
    if backend == "mysql":
        connect_args["local_infile"] = False
        engine_args["pool_recycle"] = 3600  # below the usual wait_timeout
    elif backend == "postgresql":
        if "connect_timeout" not in query_keys:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in query_keys:
            connect_args["application_name"] = "diffmig"
    engine = sa.create_engine(url, connect_args=connect_args, **engine_args)
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
        display_url=redact_url(url.render_as_string(hide_password=False)),
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
        self._sa_tables: dict[str, sa.Table] = {}
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

    def sa_table(self, name: str) -> sa.Table:
        """The reflected SQLAlchemy Table (cached), for building statements."""
        with self._lock:
            cached = self._sa_tables.get(name)
        if cached is not None:
            return cached
        info = self.require_table(name)
        with self.connect() as conn:
            table = sa.Table(info.name, sa.MetaData(), schema=info.schema, autoload_with=conn)
        with self._lock:
            self._sa_tables[name] = table
        return table

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
