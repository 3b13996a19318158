"""`diffmig analyze`."""

from __future__ import annotations

from typing import Any

from migrationsapp.cli.output import EXIT_OK, Output, Subcommand
from migrationsapp.cli.progress import progress_bars, wanted
from migrationsapp.services import analysis


def add_arguments(parser) -> None:
    parser.add_argument("--entity", action="append", dest="entities", metavar="E")
    parser.add_argument("--json", action="store_true")


def run(options: dict[str, Any], out: Output) -> int:
    with progress_bars(wanted(options)) as bars:
        group, results = analysis.analyze_entities(
            entities=options["entities"], progress=bars.analysis_callback() if bars else None
        )
    if options["json"]:
        out.json(
            {
                "analysis_id": group,
                "entities": {
                    r.entity: {"analysis_id": str(r.result.id), **r.counts.as_dict()}
                    for r in results
                },
            }
        )
        return EXIT_OK
    kinds = ["new", "modified", "deleted", "unchanged", "retry"]
    out.table(["entity", *kinds], [[r.entity, *r.counts.as_dict().values()] for r in results])
    # With --json they are in the log (and the analysis's metadata) only.
    for note in (note for r in results for note in r.notes):
        out.note(f"warning: {note}")
    return EXIT_OK


COMMANDS = [
    Subcommand(
        name="analyze",
        help="find new / modified / deleted / unchanged / retry records; write nothing",
        example="diffmig analyze --entity patient --json",
        add_arguments=add_arguments,
        run=run,
    )
]
