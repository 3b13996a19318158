"""Hints that say how to set diffmig up: commands written so that they run as printed, and
what a control-database error means for someone who has just installed it.

A hint that says ``python manage.py …`` fails without an activated virtualenv, and one that
says ``diffmig …`` fails when the console script is not on ``PATH``; ``command_prefix`` writes
the console script as it can be run from the current folder (``.venv/bin/diffmig`` in the
project folder, ``diffmig`` when ``PATH`` finds it).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# "no such table: x" (SQLite); 'relation "x" does not exist' (PostgreSQL), the same for columns.
_MISSING = (
    re.compile(r"no such (?P<kind>table|column): (?P<name>\S+)"),
    re.compile(r'(?P<kind>relation|column) "?(?P<name>[^"\s]+)"? does not exist'),
)


def _as_typed(path: Path, *, executable: bool) -> str:
    """``path`` relative to the current folder when it lies under it, else absolute."""
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        return str(path)
    text = str(relative)
    # A program in the current folder itself needs ./ for the shell to find it.
    return f"./{text}" if executable and os.sep not in text else text


def command_prefix() -> str:
    """How a printed hint starts a diffmig command, so that it runs as shown."""
    script = Path(sys.prefix) / "bin" / "diffmig"
    if script.is_file():
        found = shutil.which("diffmig")
        if found and Path(found).resolve() == script.resolve():
            return "diffmig"
        return _as_typed(script, executable=True)
    # The console script is not installed (an install older than it): manage.py still works.
    return f"{manage_prefix()} diffmig"


def manage_prefix() -> str:
    """``manage.py`` run by this interpreter, written to run from the current folder."""
    python = _as_typed(Path(sys.executable), executable=True)
    return f"{python} {_as_typed(PROJECT_ROOT / 'manage.py', executable=False)}"


def migrate_command() -> str:
    return f"{manage_prefix()} migrate"


def _control_database_shown() -> str:
    """The control database as a message may name it: never its password."""
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        return f"the SQLite file {database['NAME']}"
    host = database.get("HOST") or "localhost"
    port = f":{database['PORT']}" if database.get("PORT") else ""
    return f"PostgreSQL database {database['NAME']!r} on {host}{port}"


def control_database_problem(error: DatabaseError) -> tuple[str, str] | None:
    """``(message, hint)`` for an error that says the control database is missing or not set
    up; ``None`` for any other error."""
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    for pattern in _MISSING:
        match = pattern.search(first_line)
        if match:
            kind = "table" if match["kind"] == "relation" else match["kind"]
            return (
                f"the control database ({_control_database_shown()}) has no {kind} "
                f"{match['name']}: diffmig's tables are not created there, or not up to date",
                f"create them with {migrate_command()} (make demo and make serve do it first)",
            )
    if connections["default"].connection is None:  # the error came from connecting
        reason = first_line.replace("FATAL:  ", "")
        sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        check = (
            "its folder must exist and be writable"
            if sqlite
            else "PostgreSQL must run there and hold that database"
        )
        return (
            f"the control database ({_control_database_shown()}) cannot be reached: {reason}",
            f"check DATABASE_URL: {check}; unset, diffmig uses the SQLite file "
            "var/diffmig.sqlite3 (docs/settings.md)",
        )
    return None
