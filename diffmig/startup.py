"""Starting a diffmig process: settings that load, or two lines that say what to change.

``manage.py`` and the ``diffmig`` console script go through ``run_command``. A setting that
cannot serve (a DATABASE_URL that is no URL, ``DEBUG=maybe``, ``DEBUG=0`` without its keys)
is an ``error:`` line and a ``hint:`` line on stderr and exit code 2, from ``runserver`` as
from the CLI, never a traceback. ``runserver`` also reaches the control database before it
serves: one that cannot be reached is two lines and exit code 4, not a traceback in the
server's thread. And the system checks learn whether this process is the server (or an
explicit ``check``): the only commands that say that development mode is on.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from django.core.exceptions import ImproperlyConfigured

# The command line's exit codes (docs/cli.md): "usage error or refused" for a setting, which
# is the user's to change; "operational" for a control database that cannot be reached.
EXIT_CONFIGURATION = 2
EXIT_OPERATIONAL = 4
SETTINGS_HINT = "docs/settings.md lists every variable, its form and its default"
# The commands that report development mode (DEBUG unset): the server, once when its process
# starts, and an explicit system check. Not migrate, demo or the CLI: a warning above every
# command's output would only teach people to look past it.
REPORTING_COMMANDS = frozenset({"runserver", "check"})


def load_settings(stderr: TextIO | None = None) -> None:
    """Import the settings; a setting that cannot serve ends the process with two lines."""
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018  (the first read imports the settings module)
    except ImproperlyConfigured as error:
        stream = stderr or sys.stderr
        stream.write(f"error: {error}\n")
        stream.write(f"hint: {getattr(error, 'hint', '') or SETTINGS_HINT}\n")
        raise SystemExit(EXIT_CONFIGURATION) from None


def reach_control_database(stderr: TextIO | None = None) -> None:
    """Connect to the control database once; if it cannot be reached, end with two lines."""
    from django.db import DatabaseError, connections

    from migrationsapp.cli.setup_hints import control_database_problem

    database = connections["default"]
    try:
        database.ensure_connection()
    except DatabaseError as error:
        problem = control_database_problem(error)
        if problem is None:
            raise
        stream = stderr or sys.stderr
        stream.write(f"error: {problem[0]}\nhint: {problem[1]}\n")
        raise SystemExit(EXIT_OPERATIONAL) from None
    finally:
        database.close()


def apply_settings_options(argv: Sequence[str]) -> None:
    """``--settings`` and ``--pythonpath``, read before the settings load, as Django reads them."""
    from django.core.management.base import CommandError, CommandParser, handle_default_options

    parser = CommandParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--settings")
    parser.add_argument("--pythonpath")
    parser.add_argument("args", nargs="*")
    try:
        options, _ = parser.parse_known_args(list(argv[2:]))
        handle_default_options(options)
    except CommandError:
        pass  # the command's own parser reports it


def run_command(argv: Sequence[str]) -> None:
    """``execute_from_command_line(argv)`` once the settings load."""
    apply_settings_options(argv)
    load_settings()
    from django.core.management import execute_from_command_line

    from migrationsapp.checks import report_development_mode

    command = argv[1] if len(argv) > 1 else ""
    report_development_mode(command in REPORTING_COMMANDS)
    if command == "runserver":
        reach_control_database()
    execute_from_command_line(list(argv))
