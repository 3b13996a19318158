"""`diffmig verify`: source and destination compared record by record; exit 1 on a mismatch.

Quarantined records are listed apart; one whose destination row is gone, or differs from
what its last migrated content gives, is a mismatch too (exit 1): a quarantine must not hide
a tampered or deleted row.
"""

from __future__ import annotations

from typing import Any

from migrationsapp.cli.output import EXIT_FAILED, EXIT_OK, Output, Subcommand
from migrationsapp.engine.values import json_value
from migrationsapp.engine.verify_report import Q_MISSING, QUARANTINE_MISMATCHES, EntityVerification
from migrationsapp.services.logs import CLI_ACTOR
from migrationsapp.services.verify import verify_entities

SHOWN = 10  # mismatches listed per entity and kind in the human output


def add_arguments(parser) -> None:
    parser.add_argument(
        "--entity",
        action="append",
        dest="entities",
        metavar="E",
        help="verify only this entity (repeatable; default: every active one)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document")


def run(options: dict[str, Any], out: Output) -> int:
    report = verify_entities(entities=options["entities"], actor=CLI_ACTOR)
    if options["json"]:
        out.json(report.as_dict())
    else:
        _print(report.entities, out)
    return EXIT_OK if report.equal else EXIT_FAILED


def _print(results: list[EntityVerification], out: Output) -> None:
    kinds = ["compared", "missing", "extra", "different", "quarantined", "stale"]
    rows = []
    for result in results:
        counts = result.counts()
        rows.append([result.entity, *(counts[k] for k in kinds)])
    out.table(["entity", *kinds], rows)
    for result in results:
        _print_mismatches(result, out)
    if all(r.equal for r in results):
        out.line("source and destination are equal")


def _listed(items: list[str], total: int) -> str:
    shown = items[:SHOWN]
    return ", ".join(shown) + (f" … and {total - len(shown)} more" if total > len(shown) else "")


def _print_mismatches(result: EntityVerification, out: Output) -> None:
    entity = result.entity
    if result.missing.total:
        listed = _listed(result.missing.items, result.missing.total)
        out.line(f"{entity}: missing in the destination: {listed}")
    if result.extra.total:
        out.line(
            f"{entity}: extra destination rows: {_listed(result.extra.items, result.extra.total)}"
        )
    for difference in result.different.items[:SHOWN]:
        out.line(
            f"{entity} {difference.key}: {difference.field}: "
            f"source {json_value(difference.source)!r} != "
            f"destination {json_value(difference.destination)!r}"
        )
    if result.different.total > SHOWN:
        out.line(f"{entity}: … and {result.different.total - SHOWN} more differences")
    shown = 0
    for record in result.quarantined_records.items:
        if record.state not in QUARANTINE_MISMATCHES or shown >= SHOWN:
            continue
        shown += 1
        if record.state == Q_MISSING:
            what = "its destination row is missing"
        else:
            what = "its destination row differs from its last migrated content: " + "; ".join(
                f"{d.field}: expected {json_value(d.source)!r}, found {json_value(d.destination)!r}"
                for d in record.fields
            )
        out.line(f"{entity} {record.key} (quarantined: {record.reason}): {what}")
    if result.quarantined_mismatches > shown:
        out.line(
            f"{entity}: … and {result.quarantined_mismatches - shown} more quarantined records "
            "missing or different in the destination"
        )
    if result.stale.total:
        out.line(
            f"{entity}: written under a mapping version older than v{result.mapping_version} "
            f"(stale): {_listed(result.stale.items, result.stale.total)}"
        )


COMMANDS = [
    Subcommand(
        name="verify",
        help="compare source and destination record by record through the active mapping",
        example="diffmig verify --entity patient --json",
        add_arguments=add_arguments,
        run=run,
    )
]
