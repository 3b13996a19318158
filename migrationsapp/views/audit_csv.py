"""The audit CSV exports (execution log, quarantine): streamed, safe to open in a spreadsheet.

A cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some
spreadsheets skip before reading a formula) would be run as a formula by the program that
opens the file; such a cell is written with a leading ``'``, which shows the text as typed.
Log messages, quarantined values and reasons quote source values, and notes are typed by
people, so any cell may carry such text: every cell of every export goes through
``safe_cell``, in ``csv_lines``, the one writer of both exports.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Sequence

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from migrationsapp.models import MigrationExecutionLog, QuarantinedRecord
from migrationsapp.selectors.quarantine import state_label

LOG_HEADER = (
    "id",
    "timestamp",
    "level",
    "operation",
    "action",
    "actor",
    "session",
    "entity",
    "record",
    "message",
    "error_details",
)
QUARANTINE_HEADER = (
    "id",
    "entity",
    "key",
    "rule",
    "field",
    "value",
    "reason",
    "state",
    "first_seen_at",
    "last_seen_at",
    "last_session",
    "mapping_version",
    "resolved_at",
    "resolved_by",
    "resolution_note",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell's text, quoted with ``'`` when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _time(value) -> str:
    return value.isoformat() if value else ""


def log_row(entry: MigrationExecutionLog) -> list[object]:
    details = json.dumps(entry.error_details, sort_keys=True) if entry.error_details else ""
    return [
        entry.id,
        entry.timestamp.isoformat(),
        entry.log_level,
        entry.operation_type,
        entry.action,
        entry.actor,
        entry.session_id or "",
        entry.entity_type,
        entry.record_id or "",
        entry.message,
        details,
    ]


def quarantine_row(entry: QuarantinedRecord) -> list[object]:
    return [
        entry.id,
        entry.entity_type,
        entry.legacy_key_text,
        entry.rule,
        entry.field,
        entry.value,
        entry.reason,
        state_label(entry),
        _time(entry.first_seen_at),
        _time(entry.last_seen_at),
        entry.last_session_id or "",
        entry.mapping_version or "",
        _time(entry.resolved_at),
        entry.resolved_by,
        entry.resolution_note,
    ]


class _Line:
    """A write-only file that hands back what is written: csv.writer → one line at a time."""

    def write(self, text: str) -> str:
        return text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """The header, then every row, one CSV line at a time, every cell through ``safe_cell``."""
    writer = csv.writer(_Line())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([safe_cell(value) for value in row])


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[object]], *, filename: str
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def bad_filter(form) -> HttpResponse:
    """A CSV export's answer to filters it cannot apply: 400, one line per problem."""
    problems = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
    return HttpResponse(
        f"bad filter: {problems}", status=400, content_type="text/plain; charset=utf-8"
    )


def csv_export(
    request: HttpRequest,
    *,
    form_class,
    read: Callable[..., Iterable],
    row: Callable[..., Sequence[object]],
    header: Sequence[str],
    filename: str,
) -> HttpResponse:
    """An export under the filters of the query string (``form_class``): every entry
    ``read(filters=…)`` finds, one ``row`` each; ``bad_filter`` when the filters are wrong."""
    form = form_class(request.GET)
    if not form.is_valid():
        return bad_filter(form)
    rows = (row(entry) for entry in read(filters=form.filters()))
    return csv_response(header, rows, filename=filename)
