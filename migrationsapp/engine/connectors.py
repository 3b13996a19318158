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

``open_database`` returns a ``database.Database``, the handle the rest of the engine uses
(connections, snapshots, introspection and reads); it, ``TableInfo`` and ``ColumnInfo`` are
importable from here too.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from migrationsapp.engine import mysql_drivers
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
from migrationsapp.engine.database import Database
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.engine.introspect import ColumnInfo, TableInfo

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
