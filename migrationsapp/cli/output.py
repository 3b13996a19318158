"""Output helpers and exit codes shared by the subcommands."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from migrationsapp.models.choices import SessionStatus
from migrationsapp.selectors.sessions import eta_label, status_label, was_refused

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_STOPPED, EXIT_OPERATIONAL = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    example: str
    add_arguments: Callable[[Any], None]
    run: Callable[[dict[str, Any], Output], int]


class Output:
    """Where a subcommand writes: results to stdout, messages and progress to stderr."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout = stdout
        self.stderr = stderr

    def line(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def error(self, text: str, hint: str = "") -> None:
        self.stderr.write(f"error: {text}\n")
        if hint:
            self.stderr.write(f"hint: {hint}\n")

    def note(self, text: str) -> None:
        self.stderr.write(text + "\n")

    def json(self, document: Any) -> None:
        self.stdout.write(json.dumps(document, indent=2, default=str) + "\n")

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
        for row in [headers, *rows]:
            cells = [str(v).ljust(w) for v, w in zip(row, widths, strict=False)]
            self.line("  ".join(cells).rstrip())

    def session(self, document: dict[str, Any]) -> None:
        s = document["session"]
        self.line(
            f"session {s['id']}: {status_label(s)}  processed {s['processed']}, "
            f"failed {s['failed']}, skipped {s['skipped']}, remaining {s['remaining']}, "
            f"{s['rows_per_s']:,.0f} rows/s overall"
            + (f", ETA {eta_label(s['eta'])}" if s.get("eta") else "")
        )
        columns = [
            "new",
            "modified",
            "deleted",
            "unchanged",
            "retry",
            "processed",
            "failed",
            "skipped",
        ]
        rows = [
            [name, e["status"], *(e[c] for c in columns)]
            for name, e in document["entities"].items()
        ]
        self.table(["entity", "status", *columns], rows)
        for entity, message in s.get("errors", {}).items():
            self.note(f"{entity}: {message}")


def session_exit_code(session) -> int:
    status = session.overall_status
    if status == SessionStatus.COMPLETED:
        return EXIT_OK
    if status in (SessionStatus.PAUSED, SessionStatus.CANCELLED):
        return EXIT_STOPPED
    if was_refused(session):
        return EXIT_REFUSED
    return EXIT_FAILED
