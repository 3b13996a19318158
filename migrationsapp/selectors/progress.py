"""Reads for the runs pages: recent sessions, the analysis shown before a launch, live progress.

Numbers come from the same control rows as ``diffmig status`` (``session_document``), so the
page and the CLI never disagree; so do the stage times (``selectors.stages``). The throughput
chart is in ``selectors.throughput``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db.models import Sum
from django.utils import timezone

from migrationsapp.engine.diff import AnalysisCounts, check_delete_guard
from migrationsapp.engine.errors import DeleteGuardError
from migrationsapp.engine.mapping import EntitySpec
from migrationsapp.models import MigrationControl, MigrationExecutionLog, MigrationStatus
from migrationsapp.models.choices import (
    ACTIVE_ENTITY_STATES,
    LogLevel,
    SessionStatus,
    levels_at_or_above,
)
from migrationsapp.selectors.counts import EntityCounts
from migrationsapp.selectors.definitions import active_definitions
from migrationsapp.selectors.logs import session_logs
from migrationsapp.selectors.sessions import format_duration, session_document
from migrationsapp.selectors.stages import SessionStages, StageTimes, session_stages

ACTIVE_SESSION = (SessionStatus.PENDING, SessionStatus.RUNNING, SessionStatus.PAUSED)


def _share(part: int, whole: int) -> float:
    """``part`` as a percentage of ``whole``, for bar widths (0 to 100, one decimal)."""
    if whole <= 0:
        return 0.0
    return round(min(max(part / whole, 0.0), 1.0) * 100, 1)


# -- the dashboard -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SessionRow(EntityCounts):
    """One line of the dashboard's recent sessions: its entities' counts summed."""

    session: MigrationStatus
    entities: list[str]
    duration: dt.timedelta | None

    @property
    def id(self) -> uuid.UUID:
        return self.session.migration_session_id

    @property
    def status(self) -> str:
        return self.session.overall_status

    @property
    def duration_label(self) -> str:
        if self.duration is not None and self.duration < dt.timedelta(seconds=1):
            return "< 1 s"  # as history says it: "0 s" would read as nothing done
        return format_duration(self.duration)

    @property
    def reason(self) -> str:
        """Why a failed session failed: its first entity's message, named ("patient: …")."""
        if self.status != SessionStatus.FAILED:
            return ""
        errors = (self.session.error_summary or {}).get("entities") or {}
        if not errors:
            return "failed (the log says why)"
        entity, message = next(iter(errors.items()))
        more = len(errors) - 1
        return f"{entity}: {message}" + (f" (and {more} more)" if more else "")


def recent_sessions(*, limit: int = 20) -> list[SessionRow]:
    """The latest sessions, newest first, with their entities' counts summed (one query)."""
    sessions = MigrationStatus.objects.order_by("-created_at").annotate(
        sum_new=Sum("controls__new_count"),
        sum_modified=Sum("controls__modified_count"),
        sum_deleted=Sum("controls__deleted_count"),
        sum_retry=Sum("controls__retry_count"),
        sum_processed=Sum("controls__processed_count"),
        sum_failed=Sum("controls__failed_count"),
        sum_skipped=Sum("controls__skipped_count"),
    )[:limit]
    now = timezone.now()
    rows = []
    for s in sessions:
        duration = None
        if s.started_at:
            duration = (s.completed_at or now) - s.started_at
        rows.append(
            SessionRow(
                session=s,
                entities=list((s.options or {}).get("entities") or []),
                new=s.sum_new or 0,
                modified=s.sum_modified or 0,
                deleted=s.sum_deleted or 0,
                retry=s.sum_retry or 0,
                processed=s.sum_processed or 0,
                failed=s.sum_failed or 0,
                skipped=s.sum_skipped or 0,
                duration=duration,
            )
        )
    return rows


def any_session_active() -> bool:
    return MigrationStatus.objects.filter(overall_status__in=ACTIVE_SESSION).exists()


def launchable_entities() -> list[str]:
    """The entities with an active mapping, in dependency order (the launch form's choices)."""
    return [d.entity_type for d in active_definitions()]


def sessions_holding(entities: Sequence[str]) -> dict[str, uuid.UUID]:
    """Entity → the session whose active run holds it, for the entities given."""
    return dict(
        MigrationControl.objects.filter(
            entity_type__in=list(entities), state__in=ACTIVE_ENTITY_STATES
        ).values_list("entity_type", "session_id")
    )


@dataclass(frozen=True)
class Busy:
    """Why an entity cannot be launched now: it, or one it depends on, runs in a session."""

    holder: str  # the entity whose run holds it (itself, or a dependency)
    session_id: uuid.UUID


@dataclass(frozen=True)
class LaunchAvailability:
    """What the launch form may offer: the entities, and those busy in another session."""

    entities: list[str]
    busy: dict[str, Busy]

    @property
    def no_mapping(self) -> bool:
        return not self.entities

    @property
    def free(self) -> list[str]:
        return [name for name in self.entities if name not in self.busy]

    @property
    def all_busy(self) -> bool:
        return bool(self.entities) and not self.free

    @property
    def reason(self) -> str:
        """Why Analyse is disabled, or ""."""
        if self.no_mapping:
            return "No entity has an active mapping: import a mapping file first."
        if self.all_busy:
            return "Every entity is busy in a running session: wait for it, or pause or cancel it."
        return ""


def launch_availability() -> LaunchAvailability:
    """The launchable entities and, for each busy one, the run that holds it (one query for
    the holders; the dependencies come from the active definitions)."""
    definitions = active_definitions()
    entities = [d.entity_type for d in definitions]
    depends = {d.entity_type: list(d.depends_on or []) for d in definitions}
    held = sessions_holding(entities)
    busy: dict[str, Busy] = {}
    for name in entities:
        seen, pending = set(), [name]
        while pending:  # the entity and every entity it depends on, transitively
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in held:
                busy[name] = Busy(holder=current, session_id=held[current])
                break
            pending.extend(depends.get(current, []))
    return LaunchAvailability(entities=entities, busy=busy)


# -- the analysis shown before a launch ----------------------------------------------------------


@dataclass(frozen=True)
class AnalysisRow:
    entity: str
    new: int
    modified: int
    deleted: int
    unchanged: int
    retry: int
    source_records: int
    migrated_records: int
    # Changes as a share of every record involved (the source's plus the deleted ones).
    change_pct: float
    # Why the delete guard would refuse this entity, or "".
    guard: str = ""

    @property
    def changes(self) -> int:
        return self.new + self.modified + self.deleted + self.retry


def analysis_row(spec: EntitySpec, counts: AnalysisCounts) -> AnalysisRow:
    guard = ""
    try:
        check_delete_guard(spec, counts)
    except DeleteGuardError as error:
        guard = str(error)
    return AnalysisRow(
        entity=spec.name,
        new=counts.new,
        modified=counts.modified,
        deleted=counts.deleted,
        unchanged=counts.unchanged,
        retry=counts.retry,
        source_records=counts.source_count,
        migrated_records=counts.mapped_count,
        change_pct=_share(counts.changes, counts.source_count + counts.deleted),
        guard=guard,
    )


# -- the session page ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EntityProgress(EntityCounts):
    entity: str
    state: str
    phase: str
    message: str
    # Bar widths in percent of the entity's changes.
    processed_pct: float = 0.0
    failed_pct: float = 0.0
    skipped_pct: float = 0.0

    @property
    def done_pct(self) -> float:
        if self.state == "completed" and not self.changes:
            return 100.0
        return _share(self.done, self.changes)

    @property
    def failed_x(self) -> float:
        return self.processed_pct

    @property
    def skipped_x(self) -> float:
        return round(self.processed_pct + self.failed_pct, 1)


@dataclass(frozen=True)
class SessionProgress:
    session: MigrationStatus
    entities: list[EntityProgress]
    processed: int
    failed: int
    skipped: int
    remaining: int
    rows_per_s: float
    eta: dt.datetime | None
    elapsed: dt.timedelta | None
    errors: dict[str, str] = field(default_factory=dict)
    # Seconds per stage, per entity and for the session (None: not read).
    stages: SessionStages | None = None

    @property
    def stage_rows(self) -> list[StageTimes]:
        """The entities whose batches recorded stage times, in dependency order."""
        if self.stages is None:
            return []
        rows = [self.stages.of(e.entity) for e in self.entities]
        return [row for row in rows if row.recorded]

    @property
    def id(self) -> uuid.UUID:
        return self.session.migration_session_id

    @property
    def status(self) -> str:
        return self.session.overall_status

    @property
    def finished(self) -> bool:
        return self.session.is_finished

    @property
    def changes(self) -> int:
        return sum(e.changes for e in self.entities)

    @property
    def not_analysed(self) -> int:
        """Entities still to analyse: their changes are not counted yet."""
        return sum(
            1
            for e in self.entities
            if e.phase == "analyze" and e.state in ("pending", "running", "paused")
        )

    @property
    def elapsed_label(self) -> str:
        return format_duration(self.elapsed)

    @property
    def options(self) -> dict:
        return self.session.options or {}

    @property
    def done_pct(self) -> float:
        """Handled changes in percent of the counted ones; a completed session is done."""
        if self.status == SessionStatus.COMPLETED:
            return 100.0
        return _share(self.handled, self.changes)

    @property
    def handled(self) -> int:
        return self.processed + self.failed + self.skipped

    @property
    def unfinished(self) -> bool:
        """Failed or cancelled: the page says so instead of a percentage that may read 100 %
        (an entity refused before its changes were counted, dependants that never ran)."""
        return self.status in (SessionStatus.FAILED, SessionStatus.CANCELLED)

    @property
    def eta_label(self) -> str:
        """Time left as a duration ("3 min 05 s"); "" while paused, stopping or unknown."""
        if self.eta is None or self.status != SessionStatus.RUNNING or self.stopping:
            return ""
        return format_duration(max(self.eta - timezone.now(), dt.timedelta(0)))

    @property
    def with_failed(self) -> bool:
        return self.status == SessionStatus.COMPLETED and self.failed > 0

    @property
    def can_pause(self) -> bool:
        return self.status == SessionStatus.RUNNING and not self.session.pause_requested_at

    @property
    def can_resume(self) -> bool:
        return self.status in (SessionStatus.PAUSED, SessionStatus.FAILED)

    @property
    def can_cancel(self) -> bool:
        return self.status in ACTIVE_SESSION and not self.session.cancel_requested_at

    @property
    def stopping(self) -> str:
        """ "pause" or "cancel" while a request waits for the current batch to end."""
        if self.status != SessionStatus.RUNNING:
            return ""
        if self.session.cancel_requested_at:
            return "cancel"
        if self.session.pause_requested_at:
            return "pause"
        return ""


def session_progress(session: MigrationStatus) -> SessionProgress:
    document = session_document(session)
    totals = document["session"]
    entities = []
    for control in session.controls.order_by("position"):
        changes = EntityCounts.of(control).changes
        entities.append(
            EntityProgress(
                entity=control.entity_type,
                state=control.state,
                phase=control.phase,
                new=control.new_count,
                modified=control.modified_count,
                deleted=control.deleted_count,
                unchanged=control.unchanged_count,
                retry=control.retry_count,
                processed=control.processed_count,
                failed=control.failed_count,
                skipped=control.skipped_count,
                message=control.message,
                processed_pct=_share(control.processed_count, changes),
                failed_pct=_share(control.failed_count, changes),
                skipped_pct=_share(control.skipped_count, changes),
            )
        )
    elapsed = None
    if session.started_at:
        elapsed = (session.completed_at or timezone.now()) - session.started_at
    return SessionProgress(
        session=session,
        entities=entities,
        processed=totals["processed"],
        failed=totals["failed"],
        skipped=totals["skipped"],
        remaining=totals["remaining"],
        rows_per_s=totals["rows_per_s"],
        eta=dt.datetime.fromisoformat(totals["eta"]) if totals["eta"] else None,
        elapsed=elapsed,
        errors=dict(totals["errors"]),
        stages=session_stages(session),
    )


# -- the log panel -------------------------------------------------------------------------------


# The log panels show INFO and up unless asked: a batch's line is DEBUG, so that the warnings
# and errors of records stand out.
DEFAULT_LOG_LEVEL = LogLevel.INFO


def log_tail(
    *, session_id: uuid.UUID, limit: int = 100, level: str | None = DEFAULT_LOG_LEVEL
) -> list[MigrationExecutionLog]:
    """The last ``limit`` entries of a session at ``level`` or above, oldest first."""
    latest = MigrationExecutionLog.objects.filter(session_id=session_id)
    if level:
        latest = latest.filter(log_level__in=levels_at_or_above(level))
    return list(reversed(latest.order_by("-id")[:limit]))


def log_after(
    *,
    session_id: uuid.UUID,
    after_id: int,
    limit: int = 200,
    level: str | None = DEFAULT_LOG_LEVEL,
) -> list[MigrationExecutionLog]:
    """Entries at ``level`` or above after the last one a reader has, oldest first, at most
    ``limit``."""
    return list(session_logs(session_id=session_id, after_id=after_id, limit=limit, level=level))
