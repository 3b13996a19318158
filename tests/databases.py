"""Scratch databases on the real MariaDB and PostgreSQL services, for tests.

Each test module creates its own databases (named ``diffmig_t_<label>_<random>``) and
drops them afterwards. When a service is down the helpers raise ServiceUnavailable, which
says which service, where, and how to start it: the suite fails loudly rather than skip.

The admin URLs come from ``DIFFMIG_TEST_MYSQL_URL`` and ``DIFFMIG_TEST_PG_URL``.
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from migrationsapp.engine.connectors import ConnectionPolicy, redact_url

PREFIX = "diffmig_t_"
_SAFE_NAME = re.compile(r"diffmig_t_[a-z0-9_]{1,50}")

_HOW_TO_START = {
    "MariaDB": (
        "start it (e.g. `service mariadb start`, or `mysqld_safe &`) or point "
        "DIFFMIG_TEST_MYSQL_URL at a server the tests may create databases on"
    ),
    "PostgreSQL": (
        "start it (e.g. `pg_ctlcluster 15 main start` or `service postgresql start`) or point "
        "DIFFMIG_TEST_PG_URL at a server the tests may create databases on"
    ),
}


class ServiceUnavailable(RuntimeError):
    """A database service the tests need is not reachable."""


def mysql_admin_url() -> str:
    return os.environ.get("DIFFMIG_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")


def postgres_admin_url() -> str:
    return os.environ.get("DIFFMIG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def scratch_name(label: str = "db") -> str:
    """``diffmig_t_<label>_<random>``: unique, and safe to write into DDL."""
    clean = re.sub(r"[^a-z0-9_]", "_", label.lower())[:30] or "db"
    return f"{PREFIX}{clean}_{secrets.token_hex(4)}"


def database_name(name_or_url: str) -> str:
    """The database name of a scratch URL (or the name itself), checked to be a scratch one."""
    name = make_url(name_or_url).database if "://" in name_or_url else name_or_url
    if not name or not _SAFE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a scratch database name ({PREFIX}…): refusing it")
    return name


def _admin_engine(url: str, driver: str) -> sa.Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    return sa.create_engine(
        parsed.set(drivername=f"{backend}+{driver}"),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
    )


def _execute(service: str, url: str, driver: str, statement: str) -> None:
    engine = _admin_engine(url, driver)
    try:
        try:
            conn = engine.connect()
        except sa.exc.OperationalError as exc:
            raise ServiceUnavailable(
                f"{service} is not reachable at {redact_url(url)} ({exc.orig}): "
                f"{_HOW_TO_START[service]}"
            ) from exc
        with conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _url_for(admin_url: str, name: str) -> str:
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _new_name(name: str) -> str:
    return database_name(name) if name.startswith(PREFIX) else scratch_name(name)


def create_mysql_database(name: str = "db") -> str:
    """Create a scratch MariaDB database; ``name`` is a label unless already prefixed.

    Returns its URL (``mysql://…/diffmig_t_…``), ready for ``open_database``.
    """
    db = _new_name(name)
    _execute(
        "MariaDB",
        mysql_admin_url(),
        "pymysql",
        f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
    )
    return _url_for(mysql_admin_url(), db)


def drop_mysql_database(name_or_url: str) -> None:
    db = database_name(name_or_url)
    _execute("MariaDB", mysql_admin_url(), "pymysql", f"DROP DATABASE IF EXISTS `{db}`")


def create_postgres_database(name: str = "db") -> str:
    """Create a scratch PostgreSQL database (from template0, UTF8); returns its URL."""
    db = _new_name(name)
    _execute(
        "PostgreSQL",
        postgres_admin_url(),
        "psycopg",
        f"CREATE DATABASE \"{db}\" TEMPLATE template0 ENCODING 'UTF8'",
    )
    return _url_for(postgres_admin_url(), db)


def drop_postgres_database(name_or_url: str) -> None:
    db = database_name(name_or_url)
    _execute(
        "PostgreSQL",
        postgres_admin_url(),
        "psycopg",
        f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)',
    )


def services_policy(tmp_path: pathlib.Path) -> ConnectionPolicy:
    """A policy allowing the local services (and the test URLs' hosts) and ``tmp_path``."""
    hosts = {"127.0.0.1", "localhost"}
    for url in (mysql_admin_url(), postgres_admin_url()):
        host = make_url(url).host
        if host:
            hosts.add(host)
    return ConnectionPolicy(allowed_hosts=tuple(sorted(hosts)), sqlite_root=tmp_path)


def engine_for(url: str) -> sa.Engine:
    """An engine on a scratch database's URL, with the drivers diffmig uses."""
    url = url.replace("mysql://", "mysql+pymysql://", 1)
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
