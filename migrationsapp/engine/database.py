"""The handle the engine holds on an open database: connections, snapshots, metadata, reads.

``connectors.open_database`` makes one, under the connection policy. A ``Database`` gives
connections whose dropped or refused connect becomes SourceUnavailableError, read-only
transactions that see one consistent state of the whole database (``snapshot``), the
introspected tables (``introspect.py``, cached), and the snapshot reads, content hashes and
fetch-by-key of ``reads.py`` as its methods.
"""

from __future__ import annotations

import threading
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from migrationsapp.engine import reads
from migrationsapp.engine.errors import ConfigurationError, SourceUnavailableError
from migrationsapp.engine.introspect import TableInfo, introspect_table


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

    # -- reads --
    # reads.py's functions, bound as methods: one signature and one docstring each, and
    # reads.py needs nothing of this class but what its SourceHandle names.

    stream_key_hashes = reads.stream_key_hashes
    stream_rows = reads.stream_rows
    fetch_rows = reads.fetch_rows
    stream_key_hashes_by_timestamp = reads.stream_key_hashes_by_timestamp
    fetch_key_hashes = reads.fetch_key_hashes
