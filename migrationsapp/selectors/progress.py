"""Reads for the runs pages: the dashboard's recent sessions and one session's live progress.

Numbers come from the same control rows as ``diffmig status`` (``session_document``), so the
page and the CLI never disagree; so do the stage times (``selectors.stages``). The throughput
chart is in ``selectors.throughput``, the launch form's reads in ``selectors.launch`` and the
log panel's in ``selectors.logs``; this module names them too, for the pages that import
them from here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass, field

from django.db.models import Sum
from django.utils import timezone

from migrationsapp.engine.outcomes import Phase
from migrationsapp.models import MigrationStatus
from migrationsapp.models.choices import ACTIVE_ENTITY_STATES, SessionStatus
from migrationsapp.selectors.counts import EntityCounts, percent_of
from migrationsapp.selectors.launch import (
    AnalysisRow,
    Busy,
    LaunchAvailability,
    analysis_row,
    any_session_active,
    launch_availability,
    launchable_entities,
    sessions_holding,
)
from migrationsapp.selectors.logs import DEFAULT_LOG_LEVEL, log_after, log_tail
from migrationsapp.selectors.sessions import (
    ACTIVE_SESSION,
    duration_label,
    format_duration,
    session_document,
    session_elapsed,
)
from migrationsapp.selectors.stages import SessionStages, StageTimes, session_stages

__all__ = [
    "ACTIVE_SESSION",
    "DEFAULT_LOG_LEVEL",
    "AnalysisRow",
    "Busy",
    "EntityProgress",
    "LaunchAvailability",
    "SessionProgress",
    "SessionRow",
    "analysis_row",
    "any_session_active",
    "format_duration",
    "launch_availability",
    "launchable_entities",
    "log_after",
    "log_tail",
    "recent_sessions",
    "session_progress",
    "sessions_holding",
]


class _OfSession:
    """What a dashboard row and the session page both say of the session itself."""

    session: MigrationStatus

    @property
    def id(self) -> uuid.UUID:
        return self.session.migration_session_id

    @property
    def status(self) -> str:
        return self.session.overall_status


# -- the dashboard -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SessionRow(_OfSession, EntityCounts):
    """One line of the dashboard's recent sessions: its entities' counts summed."""

    session: MigrationStatus
    entities: list[str]
    duration: dt.timedelta | None

    @property
    def duration_label(self) -> str:
        return duration_label(self.duration)

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
    return [
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
            duration=session_elapsed(s),
        )
        for s in sessions
    ]


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
        return percent_of(self.done, self.changes)

    @property
    def failed_x(self) -> float:
        return self.processed_pct

    @property
    def skipped_x(self) -> float:
        return round(self.processed_pct + self.failed_pct, 1)


@dataclass(frozen=True)
class SessionProgress(_OfSession):
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
    def finished(self) -> bool:
        return self.session.is_finished

    @property
    def changes(self) -> int:
        return sum(e.changes for e in self.entities)

    @property
    def not_analysed(self) -> int:
        """Entities still to analyse: their changes are not counted yet."""
        return sum(
            1 for e in self.entities if e.phase == Phase.ANALYZE and e.state in ACTIVE_ENTITY_STATES
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
        return percent_of(self.handled, self.changes)

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
        counts = EntityCounts.of(control)
        entities.append(
            EntityProgress(
                **asdict(counts),
                entity=control.entity_type,
                state=control.state,
                phase=control.phase,
                message=control.message,
                processed_pct=percent_of(counts.processed, counts.changes),
                failed_pct=percent_of(counts.failed, counts.changes),
                skipped_pct=percent_of(counts.skipped, counts.changes),
            )
        )
    return SessionProgress(
        session=session,
        entities=entities,
        processed=totals["processed"],
        failed=totals["failed"],
        skipped=totals["skipped"],
        remaining=totals["remaining"],
        rows_per_s=totals["rows_per_s"],
        eta=dt.datetime.fromisoformat(totals["eta"]) if totals["eta"] else None,
        elapsed=session_elapsed(session),
        errors=dict(totals["errors"]),
        stages=session_stages(session),
    )
