"""`diffmig mappings preview ENTITY [--limit N] [--json]`: source rows next to what they become.

Registered as an action of `mappings` (``cli.mappings.EXTRA_ACTIONS``); it imports nothing
from ``cli.mappings``, so the two modules do not import each other.
"""

from __future__ import annotations

from typing import Any

from migrationsapp.cli.output import EXIT_OK, Output
from migrationsapp.engine.values import json_value
from migrationsapp.services.preview import (
    DEFAULT_LIMIT,
    PreviewReference,
    PreviewRow,
    preview_entity,
)


def add_arguments(actions, name: str) -> None:
    summary = "show source rows next to what they become, with validation results"
    parser = actions.add_parser(
        name,
        help=summary,
        description=summary + "; writes nothing",
        epilog="example: diffmig mappings preview doctor --limit 5",
    )
    parser.add_argument("entity", metavar="ENTITY", help="an entity with an active mapping")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"how many rows, the first by key (default {DEFAULT_LIMIT})",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document")


def run(options: dict[str, Any], out: Output) -> int:
    result = preview_entity(entity=options["entity"], limit=options["limit"])
    if options["json"]:
        out.json(result.as_dict())
        return EXIT_OK
    for note in result.notes:
        out.note(f"warning: {note}")
    out.line(
        f"{result.entity} (mapping v{result.mapping_version}): {result.source_table} → "
        f"{result.destination_table}, first {len(result.rows)} rows by key"
    )
    for row in result.rows:
        out.line()
        _print_row(result.entity, row, out)
    failing = sum(1 for row in result.rows if not row.passes)
    out.line()
    out.line(f"{len(result.rows) - failing} pass, {failing} would be quarantined")
    return EXIT_OK


def _text(value: Any) -> str:
    if isinstance(value, PreviewReference):
        return str(value)
    return repr(json_value(value))


def _print_row(entity: str, row: PreviewRow, out: Output) -> None:
    if row.error is None:
        verdict = "passes"
    else:
        where = f" on {row.error.field}" if row.error.field else ""
        verdict = f"FAILS {row.error.rule}{where}: {row.error.reason}"
    out.line(f"{entity} {row.key}: {verdict}")
    width = max((len(name) for name in [*row.source, *row.destination]), default=0)
    out.line("  source")
    for name, value in row.source.items():
        out.line(f"    {name.ljust(width)}  {_text(value)}")
    out.line("  destination")
    if not row.destination:
        out.line("    (no values: the row does not transform)")
    for name, value in row.destination.items():
        mark = "  ← fails" if row.error is not None and row.error.field == name else ""
        out.line(f"    {name.ljust(width)}  {_text(value)}{mark}")
