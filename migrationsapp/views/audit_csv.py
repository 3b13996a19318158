"""The execution log as CSV: one row per entry, streamed, safe to open in a spreadsheet.

A cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some
spreadsheets skip before reading a formula) would be run as a formula by the program that
opens the file; such a cell is written with a leading ``'``, which shows the text as typed.
Log messages quote source values, so a legacy row can carry such text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from migrationsapp.models import MigrationExecutionLog

HEADER = (
    "id",
    "timestamp",
    "level",
    "operation",
    "session",
    "entity",
    "record",
    "message",
    "error_details",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell's text, quoted with ``'`` when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def log_row(entry: MigrationExecutionLog) -> list[str]:
    details = json.dumps(entry.error_details, sort_keys=True) if entry.error_details else ""
    return [
        safe_cell(value)
        for value in (
            entry.id,
            entry.timestamp.isoformat(),
            entry.log_level,
            entry.operation_type,
            entry.session_id or "",
            entry.entity_type,
            entry.record_id or "",
            entry.message,
            details,
        )
    ]


class _Line:
    """A write-only file that hands back what is written: csv.writer → one line at a time."""

    def write(self, text: str) -> str:
        return text


def csv_lines(entries: Iterable[MigrationExecutionLog]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(HEADER)
    for entry in entries:
        yield writer.writerow(log_row(entry))
