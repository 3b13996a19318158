"""`diffmig …` (or `python manage.py diffmig …`): the command line of docs/cli.md.

The subcommands live in ``migrationsapp.cli``; this command builds the parser from them and
turns errors into one line (plus a hint) on stderr and the contract's exit codes: 0 success,
1 failed or differences, 2 usage error or refused, 3 paused or cancelled, 4 operational. A
control database that cannot be reached or has no tables yet says how to set it up.
"""

from __future__ import annotations

import gc
import sys
from typing import Any, NoReturn

import sqlalchemy as sa
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError

from migrationsapp.cli.output import (
    EXIT_FAILED,
    EXIT_OPERATIONAL,
    EXIT_REFUSED,
    EXIT_STOPPED,
    Output,
)
from migrationsapp.cli.registry import SUBCOMMANDS
from migrationsapp.cli.setup_hints import control_database_problem
from migrationsapp.engine.errors import DiffmigError, MappingError, TransientError
from migrationsapp.selectors.sessions import SessionNotFoundError


class OneLineParser(CommandParser):
    """A subcommand's parser: a bad argument is one line on stderr and exit 2 (docs/cli.md).

    argparse would print the whole usage first; the line names the option and what it takes,
    and ``--help`` shows the rest. Called from code (``call_command``), Django's CommandError.
    """

    def error(self, message: str) -> NoReturn:
        if not self.called_from_command_line:
            super().error(message)  # raises CommandError
        self.exit(EXIT_REFUSED, f"error: {self.prog}: {message}\n")


class Command(BaseCommand):
    help = "Differential migrations: analyse, run and follow them. See docs/cli.md."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        # Run by the console script, the program is `diffmig`, not Django's `diffmig diffmig`.
        if parser.prog == "diffmig diffmig":
            parser.prog = "diffmig"
        commands = parser.add_subparsers(
            dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser
        )
        for sub in SUBCOMMANDS:
            sub.add_arguments(
                commands.add_parser(
                    sub.name, help=sub.help, description=sub.help, epilog=f"example: {sub.example}"
                )
            )

    def handle(self, *args: Any, **options: Any) -> None:
        if self._called_from_command_line:
            # What the start-up imported lives until the process ends: kept out of the
            # collector's sight, no collection walks it again and the exit skips it (0.2 to
            # 0.3 s a command). Not under call_command, whose process goes on.
            gc.freeze()
        out = Output(self.stdout, self.stderr)
        command = next(sub for sub in SUBCOMMANDS if sub.name == options["command"])
        try:
            code = command.run(options, out)
        except SessionNotFoundError as error:
            code = fail(out, error, EXIT_OPERATIONAL)
        except (TransientError, sa.exc.OperationalError, DatabaseError) as error:
            code = fail(out, error, EXIT_OPERATIONAL)
        except DiffmigError as error:
            code = fail(out, error, EXIT_REFUSED)
        except KeyboardInterrupt:
            out.error("interrupted")
            code = EXIT_STOPPED
        except Exception as error:  # never a traceback unless asked for
            if options.get("traceback"):
                raise
            out.error(
                f"unexpected {type(error).__name__}: {error}",
                hint="rerun with --traceback for the details, and please report it",
            )
            code = EXIT_FAILED
        if code:
            sys.exit(code)


def fail(out: Output, error: Exception, code: int) -> int:
    problem = control_database_problem(error) if isinstance(error, DatabaseError) else None
    if problem:
        out.error(*problem)
    elif isinstance(error, MappingError):
        out.error("mapping refused:\n  " + "\n  ".join(str(p) for p in error.problems))
    else:
        out.error(str(error), getattr(error, "hint", ""))
    return code
