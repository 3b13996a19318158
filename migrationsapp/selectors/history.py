"""Reads for the auditors' pages: session history and the execution log, a page at a time.

Both tables grow without bound, so pages are cut by **keyset** ("the rows after the last one
shown"), never by OFFSET, and nothing counts the table: a page asks for one row more than it
shows to know whether another page follows.

* sessions, newest first, by ``(created_at, id)``; the cursor is ``<µs since epoch>.<id hex>``
  (no ``+`` or ``:`` to mangle in a URL, and exact to the microsecond); each with its
  failed records, duration and rows/s, summed from its control rows as ``diffmig status``
  does (``selectors.sessions.session_document``);
* the execution log, newest first, by ``id`` (a growing integer); the cursor is the last id.
  Filtered by level, operation, action (an ``AuditAction`` code), actor, entity, record and
  session, each an exact match.

The CSV export walks the same filtered log oldest first, in keyset chunks, so that a
streaming response never holds more than one chunk and never keeps a cursor open between
chunks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from migrationsapp.models import (
    MigrationControl,
    MigrationExecutionLog,
    MigrationStatus,
    SchemaMappingDefinition,
)
from migrationsapp.models.choices import SessionStatus, levels_at_or_above
from migrationsapp.selectors.sessions import duration_label

PAGE_SIZE = 50
EXPORT_CHUNK = 2000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

T = TypeVar("T")


class BadCursorError(ValueError):
    """A page cursor that this page did not write (edited by hand, or from another page)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list; ``next_cursor`` is None on the last page."""

    items: list[T]
    next_cursor: str | None
    is_first: bool


def cut_page(
    rows: Sequence[T], *, size: int, is_first: bool, cursor_of: Callable[[T], str]
) -> Page[T]:
    """A page from ``size + 1`` fetched rows: the extra row only says that more follow."""
    items = list(rows[:size])
    more = len(rows) > size
    return Page(
        items=items,
        next_cursor=cursor_of(items[-1]) if more and items else None,
        is_first=is_first,
    )


def id_page(query: QuerySet, *, after: str | None, size: int) -> Page:
    """Rows newest first by id, ``size`` at a time, older than the last id shown (keyset:
    no OFFSET, no COUNT)."""
    last_id = parse_id_cursor(after)
    if last_id is not None:
        query = query.filter(id__lt=last_id)
    rows = list(query.order_by("-id")[: size + 1])
    return cut_page(rows, size=size, is_first=last_id is None, cursor_of=lambda row: str(row.id))


def parse_id_cursor(text: str | None) -> int | None:
    """The last id shown, from an ``after`` parameter (empty: the first page)."""
    if not text:
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise BadCursorError(f"bad page cursor {text!r}") from exc
    if value < 1:
        raise BadCursorError(f"bad page cursor {text!r}")
    return value


def known_entities() -> list[str]:
    """Every entity that has a mapping definition (a small table), for filter choices."""
    return list(
        SchemaMappingDefinition.objects.order_by("entity_type")
        .values_list("entity_type", flat=True)
        .distinct()
    )


# --------------------------------------------------------------------------- sessions


# A status filter of its own: sessions that completed, yet with records in quarantine.
COMPLETED_WITH_FAILURES = "completed_with_failures"


@dataclass(frozen=True)
class SessionFilters:
    status: str | None = None  # a session status, or COMPLETED_WITH_FAILURES
    entity: str | None = None
    since: dt.date | None = None  # created on or after this day (the site's time zone)
    until: dt.date | None = None  # created on or before this day


def session_cursor(session: MigrationStatus) -> str:
    micros = (session.created_at - EPOCH) // dt.timedelta(microseconds=1)
    return f"{micros}.{session.id.hex}"


def parse_session_cursor(text: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    if not text:
        return None
    try:
        micros, hex_id = text.split(".", 1)
        return EPOCH + dt.timedelta(microseconds=int(micros)), uuid.UUID(hex=hex_id)
    except ValueError as exc:
        raise BadCursorError(f"bad page cursor {text!r}") from exc


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def filtered_sessions(filters: SessionFilters) -> QuerySet[MigrationStatus]:
    query = MigrationStatus.objects.all()
    if filters.status == COMPLETED_WITH_FAILURES:
        query = query.filter(
            Exists(
                MigrationControl.objects.filter(
                    session_id=OuterRef("migration_session_id"), failed_count__gt=0
                )
            ),
            overall_status=SessionStatus.COMPLETED,
        )
    elif filters.status:
        query = query.filter(overall_status=filters.status)
    if filters.entity:
        query = query.filter(
            Exists(
                MigrationControl.objects.filter(
                    session_id=OuterRef("migration_session_id"), entity_type=filters.entity
                )
            )
        )
    # Bounds as instants (not ``created_at__date``), so that the created_at index serves.
    if filters.since:
        query = query.filter(created_at__gte=_day_start(filters.since))
    if filters.until:
        query = query.filter(created_at__lt=_day_start(filters.until + dt.timedelta(days=1)))
    return query


@dataclass(frozen=True)
class HistoryRow:
    """One session of the history, with what its entities' control rows add up to."""

    session: MigrationStatus
    controls: list[MigrationControl]
    processed: int
    failed: int
    skipped: int
    duration: dt.timedelta | None  # started → finished (→ now while it runs); None if never started
    rows_per_s: float | None  # processed ÷ duration, as ``diffmig status`` reports it

    @property
    def status(self) -> str:
        return self.session.overall_status

    @property
    def completed_with_failures(self) -> bool:
        return self.status == SessionStatus.COMPLETED and self.failed > 0

    @property
    def duration_label(self) -> str:
        return duration_label(self.duration)


def history_row(session: MigrationStatus, *, now: dt.datetime) -> HistoryRow:
    controls = list(session.controls.all())  # prefetched
    processed = sum(c.processed_count for c in controls)
    duration = None
    rate = None
    if session.started_at:
        duration = max((session.completed_at or now) - session.started_at, dt.timedelta(0))
        seconds = duration.total_seconds()
        rate = round(processed / seconds, 1) if seconds > 0 else None
    return HistoryRow(
        session=session,
        controls=controls,
        processed=processed,
        failed=sum(c.failed_count for c in controls),
        skipped=sum(c.skipped_count for c in controls),
        duration=duration,
        rows_per_s=rate,
    )


def session_history(
    *, filters: SessionFilters, after: str | None = None, size: int = PAGE_SIZE
) -> Page[HistoryRow]:
    """Sessions newest first, ``size`` at a time, after the cursor of the last one shown.

    Each session comes with its control rows (one per entity, one more query for the page),
    for the per-entity summary and the failed, duration and rows/s columns.
    """
    cursor = parse_session_cursor(after)
    query = filtered_sessions(filters)
    if cursor is not None:
        created, session_id = cursor
        query = query.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=session_id))
    sessions = list(
        query.order_by("-created_at", "-id").prefetch_related(
            Prefetch("controls", queryset=MigrationControl.objects.order_by("position"))
        )[: size + 1]
    )
    page = cut_page(sessions, size=size, is_first=cursor is None, cursor_of=session_cursor)
    now = timezone.now()
    return Page(
        items=[history_row(s, now=now) for s in page.items],
        next_cursor=page.next_cursor,
        is_first=page.is_first,
    )


# --------------------------------------------------------------------------- execution log


@dataclass(frozen=True)
class LogFilters:
    level: str | None = None  # a threshold: this level and the more severe ones
    operation: str | None = None
    entity: str | None = None
    record: str | None = None  # the record's key text, exactly
    session: uuid.UUID | None = None  # a migration_session_id
    action: str | None = None  # an AuditAction code
    actor: str | None = None  # a username, "cli", "schedule", "worker"


# The filters that match one column exactly: the filter's name → the log's column.
LOG_EXACT_FILTERS = {
    "operation": "operation_type",
    "entity": "entity_type",
    "record": "record_id",
    "session": "session_id",
    "action": "action",
    "actor": "actor",
}


def filtered_logs(filters: LogFilters) -> QuerySet[MigrationExecutionLog]:
    query = MigrationExecutionLog.objects.all()
    if filters.level:
        query = query.filter(log_level__in=levels_at_or_above(filters.level))
    for name, column in LOG_EXACT_FILTERS.items():
        value = getattr(filters, name)
        if value:
            query = query.filter(**{column: value})
    return query


def log_page(
    *, filters: LogFilters, after: str | None = None, size: int = PAGE_SIZE
) -> Page[MigrationExecutionLog]:
    """Log entries newest first, ``size`` at a time, older than the last id shown."""
    return id_page(filtered_logs(filters), after=after, size=size)


def log_export_rows(
    *, filters: LogFilters, chunk: int = EXPORT_CHUNK
) -> Iterator[MigrationExecutionLog]:
    """Every matching entry, oldest first, read ``chunk`` rows per query (keyset on id)."""
    return export_rows(filtered_logs(filters), chunk=chunk)


def export_rows(query: QuerySet[T], *, chunk: int = EXPORT_CHUNK) -> Iterator[T]:
    """Every row of ``query``, oldest first by id, ``chunk`` rows per query (keyset on id).

    No query stays open between chunks, so a slow download holds no cursor or snapshot.
    """
    last_id = 0
    while True:
        rows = list(query.filter(id__gt=last_id).order_by("id")[:chunk])
        yield from rows
        if len(rows) < chunk:
            return
        last_id = rows[-1].id
