"""`diffmig connections test`."""

from __future__ import annotations

from typing import Any

from migrationsapp.cli.output import EXIT_OK, EXIT_OPERATIONAL, EXIT_REFUSED, Output, Subcommand
from migrationsapp.services.connectivity import test_connections


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=["test"])


def run(options: dict[str, Any], out: Output) -> int:
    results = test_connections()
    if not results:
        out.error(
            "no connection is configured",
            hint="import a mapping file first: diffmig mappings import FILE",
        )
        return EXIT_REFUSED
    code = EXIT_OK
    for result in results:
        if result.ok:
            out.line(f"{result.name}: ok  {result.server}  ({result.url})")
        else:
            out.line(f"{result.name}: FAILED  {result.error}  ({result.url})")
            code = EXIT_OPERATIONAL
    return code


COMMANDS = [
    Subcommand(
        name="connections",
        help="check the connections of the active mappings",
        example="diffmig connections test",
        add_arguments=add_arguments,
        run=run,
    )
]
