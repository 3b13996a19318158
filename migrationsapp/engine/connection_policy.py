"""Where a connection may point: the rules a URL passes before anything connects.

The reachable set is a deliberate list, not whatever a URL can express:

* the host is named (a URL without one would reach a local socket or a driver's default)
  and is in ``DIFFMIG_ALLOWED_DB_HOSTS``; an entry ``host:port`` also pins the port;
* driver options come from a short allow-list per database: nothing that reads a local
  file, reaches a local socket, sets server options, or moves the host, port, database,
  user or password out of the places the checks look at;
* a SQLite file lies under ``DIFFMIG_SQLITE_ROOT`` (after following symlinks), and that
  root must not hold the control database's file;
* nothing resolves to the control database itself: the same SQLite file (by path or by
  inode: a hard link is the same file), or the same host (``localhost``, ``127.0.0.1``,
  ``::1`` and this machine's names are one host), port and database name.

Every refusal is a ConfigurationError showing the URL through ``redact_url``. Which machine
a host is (the allow-list, one host under several names) is ``connection_hosts.py``'s.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from migrationsapp.engine.connection_hosts import check_allowed_host, same_host
from migrationsapp.engine.connection_hosts import host_addresses as host_addresses
from migrationsapp.engine.connection_urls import redact_url, userinfo_problem
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.engine.mysql_drivers import mysql_driver

__all__ = [
    "DEFAULT_PORTS",
    "ConnectionPolicy",
    "ControlDatabase",
    "check_url",
    "checked_url",
    "control_from_settings",
    "host_addresses",
    "option_problem",
    "template_problems",
]


@dataclass(frozen=True)
class ControlDatabase:
    """The control database, as connections must never reach it.

    ``backend`` is ``postgresql``, ``mysql`` or ``sqlite``; for SQLite ``name`` is the
    file's path, otherwise the database name on ``host``:``port``.
    """

    backend: str
    name: str
    host: str = ""
    port: int | None = None


@dataclass(frozen=True)
class ConnectionPolicy:
    """Where connections may point (``DIFFMIG_ALLOWED_DB_HOSTS``, ``DIFFMIG_SQLITE_ROOT``) and
    the control database(s) they must not reach."""

    allowed_hosts: tuple[str, ...]
    sqlite_root: pathlib.Path
    control: tuple[ControlDatabase, ...] = ()


# scheme -> (backend, the driver a URL may name). A URL names the database, not the driver:
# MySQL/MariaDB is read with mysqlclient or PyMySQL, as mysql_drivers.mysql_driver() says.
_SCHEMES = {
    "mysql": ("mysql", "pymysql"),
    "mariadb": ("mysql", "pymysql"),
    "postgresql": ("postgresql", "psycopg"),
    "postgres": ("postgresql", "psycopg"),
    "sqlite": ("sqlite", "pysqlite"),
}
DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}

# --- driver options ---------------------------------------------------------------------

_NUMBER = re.compile(r"[0-9]{1,6}")
_SAFE_OPTIONS: dict[str, dict[str, re.Pattern[str]]] = {
    "mysql": {
        "charset": re.compile(r"[A-Za-z0-9_]{1,32}"),
        "connect_timeout": _NUMBER,
        "read_timeout": _NUMBER,
        "write_timeout": _NUMBER,
    },
    "postgresql": {
        "sslmode": re.compile(r"disable|allow|prefer|require|verify-ca|verify-full"),
        "connect_timeout": _NUMBER,
        "application_name": re.compile(r"[A-Za-z0-9_.\- ]{1,63}"),
    },
    "sqlite": {"timeout": re.compile(r"[0-9]{1,4}(\.[0-9]+)?")},
}
_FILES_OR_STATEMENTS = "it makes the driver read local files or run a statement"
# Why the well-known dangerous options are refused; any other unknown option is refused too.
_REFUSAL_REASONS = {
    "local_infile": _FILES_OR_STATEMENTS,
    "read_default_file": _FILES_OR_STATEMENTS,
    "read_default_group": _FILES_OR_STATEMENTS,
    "init_command": _FILES_OR_STATEMENTS,
    "unix_socket": "it reaches a local socket",
    "options": "it sets server options",
    "uri": "diffmig opens SQLite files itself: give the path, not a file: URI",
    "password": "a password goes in the URL's user part (percent-encoded), as a whole "
    "${DIFFMIG_…} placeholder there, or in the connection's password field",
}
_REFUSAL_REASONS["passwd"] = _REFUSAL_REASONS["pwd"] = _REFUSAL_REASONS["password"]
for _name in ("host", "hostaddr", "port", "dbname", "db", "database", "user", "username"):
    _REFUSAL_REASONS[_name] = "it moves the connection away from the URL's own host and database"
for _name in ("passfile", "service", "servicefile", "sslkeylogfile", "sslcrl", "sslcrldir"):
    _REFUSAL_REASONS[_name] = "it makes the driver read or write a file on this machine"


def option_problem(backend: str | None, key: str, value: str) -> str | None:
    """Why the driver option ``key=value`` is refused for ``backend`` (None: allowed).

    ``backend`` None (a scheme still behind a placeholder) allows what any backend allows.
    """
    name = key.strip().lower()
    if name in _REFUSAL_REASONS:
        return f"driver option {key!r} is refused ({_REFUSAL_REASONS[name]})"
    if name.startswith("ssl") and name != "sslmode":
        return f"driver option {key!r} is refused (it makes the driver read a file on this machine)"
    backends = [backend] if backend else list(_SAFE_OPTIONS)
    patterns = [_SAFE_OPTIONS[b][name] for b in backends if name in _SAFE_OPTIONS.get(b, {})]
    if not patterns:
        allowed = sorted({k for b in backends for k in _SAFE_OPTIONS.get(b, {})})
        return (
            f"driver option {key!r} is refused: diffmig passes only "
            f"{', '.join(allowed) or 'no option'} to this driver"
        )
    if "${" not in value and not any(p.fullmatch(value) for p in patterns):
        return f"driver option {key!r} has a value diffmig does not pass on"
    return None


def _query_items(text: str) -> list[tuple[str, str]]:
    query = text.partition("?")[2].partition("#")[0]
    return parse_qsl(query, keep_blank_values=True)


def template_problems(template: str) -> list[str]:
    """What is wrong with a URL as written in a mapping file or the admin, before expansion.

    The same rules apply again to the expanded URL when it is opened; checking the template
    first refuses a bad literal URL at import, with the option or the cause named.
    """
    problems = []
    userinfo = userinfo_problem(template)
    if userinfo is not None:
        problems.append(f"the URL is refused: {userinfo}")
    scheme = template.partition("://")[0].partition("+")[0].lower()
    backend = _SCHEMES[scheme][0] if scheme in _SCHEMES else None
    for key, value in _query_items(template):
        problem = option_problem(backend, key, value)
        if problem is not None:
            problems.append(problem)
    return problems


# --- the control database's server ---------------------------------------------------


def _same_server(host: str, port: int, control: ControlDatabase) -> bool:
    control_port = control.port or DEFAULT_PORTS.get(control.backend)
    if port != control_port:
        return False
    return same_host(host, control.host)


# --- SQLite -----------------------------------------------------------------------------


def _same_file(a: pathlib.Path, b: pathlib.Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


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
    controls = [pathlib.Path(c.name).resolve() for c in policy.control if c.backend == "sqlite"]
    for control in controls:
        if control.is_relative_to(root):
            raise ConfigurationError(
                f"{shown} is refused: DIFFMIG_SQLITE_ROOT ({root}) holds the control "
                f"database's file; point DIFFMIG_SQLITE_ROOT at a folder of its own"
            )
    if not resolved.is_relative_to(root):
        raise ConfigurationError(
            f"SQLite file {database!r} resolves to {resolved}, which is outside "
            f"DIFFMIG_SQLITE_ROOT ({root})"
        )
    if any(_same_file(resolved, control) for control in controls):
        raise ConfigurationError(
            f"{shown} is refused: it is the control database's own file "
            "(diffmig's users, sessions and secrets live there)"
        )
    return resolved


# --- the whole URL ----------------------------------------------------------------------

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def check_url(url: str, policy: ConnectionPolicy) -> None:
    """Refuse a URL the policy does not allow (raises ConfigurationError)."""
    checked_url(url, policy)


def _parsed(text: str, shown: str) -> URL:
    problem = userinfo_problem(text)
    if problem is not None:
        raise ConfigurationError(f"{shown} is refused: {problem}")
    try:
        return make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        # No "from": the parser's message quotes the URL, password and all.
        raise ConfigurationError(
            f"{shown} is not a database URL: write e.g. mysql://user:pw@host:3306/db, "
            "postgresql://user@host:5432/db or sqlite:///path/to/file.db"
        ) from None


def _check_options(url: URL, backend: str, shown: str) -> None:
    for key, value in url.query.items():
        values = [value] if isinstance(value, str) else list(value)
        if len(values) != 1:
            raise ConfigurationError(f"driver option {key!r} in {shown} is given more than once")
        problem = option_problem(backend, key, values[0])
        if problem is not None:
            raise ConfigurationError(f"{shown}: {problem}")


def _check_not_control(
    url: URL, backend: str, port: int, policy: ConnectionPolicy, shown: str
) -> None:
    for control in policy.control:
        if control.backend != backend or (url.database or "") != control.name:
            continue
        if _same_server(url.host or "", port, control):
            raise ConfigurationError(
                f"{shown} is refused: it is diffmig's control database "
                "(its users, sessions and secrets live there); a mapping reads and writes "
                "other databases only"
            )


def checked_url(text: str, policy: ConnectionPolicy) -> URL:
    """Check ``text`` (placeholders already expanded) and return the URL diffmig connects with."""
    shown = redact_url(text)
    if "${" in text:
        raise ConfigurationError(f"{shown} still holds a ${{…}} placeholder: expand it first")
    url = _parsed(text, shown)
    scheme, _, driver = url.drivername.lower().partition("+")
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"{shown}: scheme {url.drivername!r} is not supported "
            "(use mysql://, mariadb://, postgresql:// or sqlite:///)"
        )
    backend, our_driver = _SCHEMES[scheme]
    if driver and driver != our_driver:
        raise ConfigurationError(
            f"{shown}: driver {driver!r} is not supported; write {scheme}:// or "
            f"{scheme}+{our_driver}:// (diffmig chooses the driver it connects with)"
        )
    _check_options(url, backend, shown)

    if backend == "sqlite":
        path = _sqlite_path(url.database, policy, shown)
        return url.set(drivername="sqlite+pysqlite", database=str(path))

    for part, value in (("host", url.host), ("user", url.username), ("database", url.database)):
        # A line break in a name would let a text protocol on that port read a second command.
        if value and _CONTROL_CHARACTERS.search(value):
            raise ConfigurationError(f"{shown}: the {part} holds a control character")
    if not url.host:
        raise ConfigurationError(
            f"{shown} is refused: name the database server's host (a URL without one reaches "
            "a local socket or the driver's default)"
        )
    if not url.database:
        raise ConfigurationError(
            f"{shown} is refused: name the database (without one the driver picks a default)"
        )
    port = url.port or DEFAULT_PORTS[backend]
    check_allowed_host(url.host, port, policy.allowed_hosts, shown)
    if backend == "postgresql" and ("=" in url.database or "://" in url.database):
        # libpq may read a dbname that looks like a connection string as one, host and all.
        raise ConfigurationError(f"{shown}: database name {url.database!r} is refused")
    _check_not_control(url, backend, port, policy, shown)
    # The port is always explicit: no driver default or PGPORT decides where it goes.
    connect_with = mysql_driver() if backend == "mysql" else our_driver
    url = url.set(drivername=f"{backend}+{connect_with}", port=port)
    if backend == "mysql" and not any(k.lower() == "charset" for k in url.query):
        # utf8mb4, not MySQL's 3-byte utf8: emoji and other astral characters survive.
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url


def control_from_settings(entries: Iterable[dict]) -> tuple[ControlDatabase, ...]:
    """The control databases of Django-style DATABASES entries (in-memory ones are skipped)."""
    found = []
    for entry in entries:
        engine, name = str(entry.get("ENGINE", "")), str(entry.get("NAME") or "")
        if engine.endswith("sqlite3"):
            if name and name != ":memory:" and "mode=memory" not in name:
                found.append(ControlDatabase(backend="sqlite", name=str(pathlib.Path(name))))
            continue
        backend = "postgresql" if "postgresql" in engine else "mysql" if "mysql" in engine else ""
        if backend:
            port = str(entry.get("PORT") or "")
            found.append(
                ControlDatabase(
                    backend=backend,
                    name=name,
                    host=str(entry.get("HOST") or ""),
                    port=int(port) if port.isdigit() else None,
                )
            )
    return tuple(dict.fromkeys(found))
