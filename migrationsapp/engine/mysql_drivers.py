"""The MySQL/MariaDB driver diffmig reads with, and what makes both drivers read alike.

Two drivers speak the protocol here:

* mysqlclient (``MySQLdb``, a C extension over libmariadb/libmysqlclient): about three
  times as fast at reading rows, since it does not parse them in Python. It needs a
  compiler and the client library's headers to install (the ``fast`` extra);
* PyMySQL, pure Python: installs everywhere, and is the fallback.

``DIFFMIG_MYSQL_DRIVER`` chooses: ``auto`` (the default: mysqlclient when it can be
imported, else PyMySQL), ``mysqlclient`` (refused when it cannot be imported) or
``pymysql``. Whichever is used, a value reads back the same: mysqlclient reads a date it
cannot hold in Python (``'0000-00-00'``, ``'2020-02-30'``) as None, which would make a zero
date look like a NULL; here it keeps the text, as PyMySQL does.
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
from collections.abc import Callable
from typing import Any

from migrationsapp.engine.errors import ConfigurationError

__all__ = ["abandon_stream", "connect_args", "mysql_driver"]

# DIFFMIG_MYSQL_DRIVER value -> SQLAlchemy's name of the driver
_CHOICES = {"mysqlclient": "mysqldb", "pymysql": "pymysql"}


@functools.cache
def _mysqlclient_importable() -> bool:
    try:
        importlib.import_module("MySQLdb")
    except ImportError:
        return False
    return True


def mysql_driver() -> str:
    """SQLAlchemy's name of the driver MySQL/MariaDB connections use now: mysqldb or pymysql."""
    choice = os.environ.get("DIFFMIG_MYSQL_DRIVER", "auto").strip().lower() or "auto"
    if choice == "auto":
        return "mysqldb" if _mysqlclient_importable() else "pymysql"
    if choice not in _CHOICES:
        raise ConfigurationError(
            f"DIFFMIG_MYSQL_DRIVER={choice!r} is not a driver diffmig knows: "
            "write auto, mysqlclient or pymysql"
        )
    if choice == "mysqlclient" and not _mysqlclient_importable():
        raise ConfigurationError(
            "DIFFMIG_MYSQL_DRIVER=mysqlclient, but mysqlclient cannot be imported here",
            hint="Install it (pip install 'diffmig[fast]', which needs the MariaDB/MySQL client "
            "headers and a compiler), or set DIFFMIG_MYSQL_DRIVER=auto.",
        )
    return _CHOICES[choice]


# --- values -----------------------------------------------------------------------------


def _text_when_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert_or_text(raw: Any) -> Any:
        value = convert(raw)
        if value is None and raw is not None:
            return raw.decode("ascii") if isinstance(raw, bytes) else raw
        return value

    return convert_or_text


@functools.cache
def _mysqlclient_conversions() -> dict[Any, Any]:
    from MySQLdb import converters, times
    from MySQLdb.constants import FIELD_TYPE

    conversions = dict(converters.conversions)
    conversions[FIELD_TYPE.TIMESTAMP] = _text_when_none(times.DateTime_or_None)
    conversions[FIELD_TYPE.DATETIME] = _text_when_none(times.DateTime_or_None)
    conversions[FIELD_TYPE.DATE] = _text_when_none(times.Date_or_None)
    conversions[FIELD_TYPE.TIME] = _text_when_none(times.TimeDelta_or_None)
    return conversions


def connect_args(driver: str) -> dict[str, Any]:
    """The driver's connect arguments diffmig always passes (never from the URL)."""
    args: dict[str, Any] = {"local_infile": False}
    if driver == "mysqldb":
        args["conv"] = _mysqlclient_conversions()
    return args


# --- streams ----------------------------------------------------------------------------


def abandon_stream(cursor: Any) -> None:
    """Let a consumer stop reading an unbuffered result without reading the rest of it.

    The protocol has no way to stop a result half-way: both drivers read (and discard)
    every remaining row when the cursor closes, which on a large table takes as long as
    the whole read. Here the rest is given up: PyMySQL's pending result is marked finished;
    mysqlclient's socket is shut down, so the discard fails at once. Either way the caller
    then drops the connection (invalidates it); the server sees the client gone and stops.
    """
    pending = getattr(cursor, "_result", None)
    if pending is not None and getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False  # PyMySQL
        return
    native = getattr(cursor, "connection", None)
    fileno = getattr(native, "fileno", None)
    if pending is None or not callable(fileno):
        return
    try:
        # A duplicate of the descriptor: shutdown() acts on the connection they share,
        # and closing the duplicate leaves the driver's own descriptor to the driver.
        with socket.socket(fileno=os.dup(fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to read
