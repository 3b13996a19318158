"""Which rows of a batch the destination refuses, and why, without refusing the batch.

A batch is written as a whole (one COPY and one set-based statement). When the database
refuses it — a value a column cannot hold, a foreign key, a NOT NULL, a CHECK — the rows at
fault are found by writing parts of the batch, each in a savepoint: a refused part is split
in halves (or, when COPY names the line it stopped at, around that row) until each refused
row stands alone, and is refused with the database's own reason for that one row. The other
rows are written. With k bad rows among n this costs about k·log(n) small statements, where
trying every row alone cost n.

Only errors a row can cause count as refusals (constraint and data errors); a lost
connection stops the batch. No Django here: the engine's writers use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from .errors import RowError

# PostgreSQL names the row and column of a value COPY could not take in the error's context:
# 'COPY diffmig_stage, line 3, column salary: "1e9"'.
_COPY_CONTEXT = re.compile(
    r"COPY (?P<table>[^,\s]+), line (?P<line>\d+)(?:, column (?P<column>[^:\s]+))?"
)

# Runs one part of a batch (the indexes of its rows) inside the caller's savepoint.
Attempt = Callable[[Sequence[int]], None]


def find_refused(
    conn: sa.Connection,
    count: int,
    attempt: Attempt,
    *,
    stage: str | None = None,
    again: bool = False,
) -> dict[int, sa.exc.DBAPIError]:
    """Write rows ``0 … count-1`` by ``attempt``; the rows refused alone, with the error.

    ``stage`` is the table COPY fills, whose line numbers locate a bad row at once. With
    ``again``, refused rows are tried again (together, then apart) while some of them get
    through: rows of one table that reference each other can go once their partners went.
    The caller commits ``conn``.
    """
    tried = list(range(count))
    refused = _pass(conn, tried, attempt, stage)
    while again and refused and len(refused) < len(tried):
        tried = sorted(refused)
        refused = _pass(conn, tried, attempt, stage)
    return refused


def _pass(
    conn: sa.Connection, indexes: list[int], attempt: Attempt, stage: str | None
) -> dict[int, sa.exc.DBAPIError]:
    refused: dict[int, sa.exc.DBAPIError] = {}
    pending = [indexes]  # a stack, so that parts go in batch order: earlier rows win
    while pending:
        part = pending.pop()
        savepoint = conn.begin_nested()
        try:
            attempt(part)
            savepoint.commit()
        except sa.exc.DBAPIError as exc:
            savepoint.rollback()
            if not is_row_error(exc):
                raise
            if len(part) == 1:
                refused[part[0]] = exc
            else:
                pending.extend(reversed(_split(part, _copy_line(exc, stage))))
    return refused


def _split(part: list[int], line: int | None) -> list[list[int]]:
    """The pieces to try next: halves, or, when COPY named the row it stopped at, that row
    alone (so that its reason is its own) between the rows before and after it, the larger
    of these halved again so that every round at least halves what remains."""
    if line is None or not 1 <= line <= len(part):
        middle = len(part) // 2
        return [part[:middle], part[middle:]]
    pieces: list[list[int]] = []
    for piece in (part[: line - 1], part[line - 1 : line], part[line:]):
        if len(piece) > max(1, len(part) // 2):
            middle = len(piece) // 2
            pieces.extend([piece[:middle], piece[middle:]])
        elif piece:
            pieces.append(piece)
    return pieces


def _copy_line(exc: sa.exc.DBAPIError, stage: str | None) -> int | None:
    if stage is None:
        return None
    match = _COPY_CONTEXT.search(_context(exc))
    if match is None or match.group("table").strip('"') != stage:
        return None
    return int(match.group("line"))


def _context(exc: sa.exc.DBAPIError) -> str:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "context", None) or str(exc.orig)


def is_row_error(exc: sa.exc.DBAPIError) -> bool:
    """True for errors a single row can cause (constraint, data); False for lost connections."""
    if exc.connection_invalidated:
        return False
    return isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError) or (
        "constraint" in str(exc.orig).lower()
    )


def database_reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig).strip().splitlines()
    return "destination refused the row: " + " ".join(line.strip() for line in text[:2])


def refused_column(
    exc: sa.exc.DBAPIError, row: Mapping[str, Any], columns: Sequence[str]
) -> str | None:
    """The destination column the database blamed, when it says (None: it does not)."""
    diag = getattr(exc.orig, "diag", None)
    named = getattr(diag, "column_name", None)  # NOT NULL violations name it
    if named in columns:
        return named
    match = _COPY_CONTEXT.search(_context(exc))
    if match and match.group("column") and match.group("column").strip('"') in columns:
        return match.group("column").strip('"')
    return None


def row_refusal(exc: sa.exc.DBAPIError, row: Mapping[str, Any], columns: Sequence[str]) -> RowError:
    """One refused row as the error it is quarantined with: the reason, and the column."""
    column = refused_column(exc, row, columns)
    return RowError(
        database_reason(exc),
        field=column,
        rule="destination",
        value=None if column is None else row.get(column),
    )
