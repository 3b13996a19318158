"""Opening a run's source and destination, before any work: connect now, or say why not.

The engine's databases connect lazily, so a database that is down, a wrong password or an
unknown database would only show deep inside an analysis or a batch — where a transient
error is retried by the watchdog, over and over, and the session stays ``running``. A run
opens both connections here first (one ``SELECT 1`` each): what cannot be opened raises
``ConnectionOpenError``, a terminal error naming the connection and the cause. In-process
(``services.runs.execute_session``) every entity still to run fails with it at once; on the
RQ workers (``services.units``) the unit counts an attempt and the watchdog tries again (the
database may be restarting) until ``DIFFMIG_MAX_ATTEMPTS``, then the entity fails with it.
Either way the session ends ``failed`` and blocks nothing; ``diffmig resume`` or a new run
tries again once the connection is fixed.
"""

from __future__ import annotations

import sqlalchemy as sa

from migrationsapp.engine.connectors import Database
from migrationsapp.engine.errors import DiffmigError, TerminalError
from migrationsapp.services.databases import open_named

HINT = (
    "Check that the database is up and that the connection's host, database, user and "
    "password are right (`diffmig connections test`), then `diffmig resume` the session or "
    "start a new run."
)


class ConnectionOpenError(TerminalError):
    """A connection of the run cannot be opened: the run cannot start its work."""


def _cause(error: BaseException) -> str:
    """The driver's own words, on one line (SQLAlchemy's wrapper only adds a link to its
    docs). Drivers name the user and host, never the password."""
    inner = error.__cause__ if isinstance(error, DiffmigError) and error.__cause__ else error
    orig = getattr(inner, "orig", None)
    text = str(orig if orig is not None else inner)
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def open_for_run(name: str) -> Database:
    """The named connection, opened and answering; else ``ConnectionOpenError``."""
    try:
        database = open_named(name)
    except DiffmigError as error:  # forbidden host, unknown variable, undecryptable password
        raise ConnectionOpenError(
            f"cannot open the connection {name!r}: {error}", hint=HINT
        ) from error
    try:
        with database.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except (DiffmigError, sa.exc.SQLAlchemyError) as error:
        database.close()
        raise ConnectionOpenError(
            f"cannot open the connection {name!r}: {_cause(error)}", hint=HINT
        ) from error
    return database
