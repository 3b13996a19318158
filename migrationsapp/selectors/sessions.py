"""Reads about sessions for the CLI and the pages: the session document, progress, ETA."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.utils import timezone

from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import SessionStatus
from migrationsapp.selectors.counts import EntityCounts
from migrationsapp.selectors.stages import StageTimes, session_stages

# A session in one of these may still change: the dashboard says a run is active, and the
# session page offers Cancel.
ACTIVE_SESSION = (SessionStatus.PENDING, SessionStatus.RUNNING, SessionStatus.PAUSED)


def format_duration(duration: dt.timedelta | None) -> str:
    """A duration as people read it: "42 s", "3 min 05 s", "2 h 07 min"."""
    if duration is None:
        return ""
    seconds = max(int(duration.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def duration_label(duration: dt.timedelta | None) -> str:
    """A session's length as its row shows it: "< 1 s" under a second ("0 s" would read as
    nothing done), else ``format_duration``."""
    if duration is not None and duration < dt.timedelta(seconds=1):
        return "< 1 s"
    return format_duration(duration)


def session_elapsed(session: MigrationStatus) -> dt.timedelta | None:
    """From its start to its end, or to now while it runs; None before it starts."""
    if session.started_at is None:
        return None
    return (session.completed_at or timezone.now()) - session.started_at


class SessionNotFoundError(ConfigurationError):
    """No session with that id (or no session at all)."""


def get_session(session_id: str | uuid.UUID | None = None) -> MigrationStatus:
    """The session with this id (a prefix of at least 8 characters works), or the latest."""
    if session_id is None:
        session = MigrationStatus.objects.order_by("-created_at").first()
        if session is None:
            raise SessionNotFoundError("there is no session yet", hint="Start one: diffmig run")
        return session
    text = str(session_id).strip().lower()
    try:
        return MigrationStatus.objects.get(migration_session_id=uuid.UUID(text))
    except (ValueError, MigrationStatus.DoesNotExist):
        pass
    if len(text) >= 8:
        matches = [
            s
            for s in MigrationStatus.objects.order_by("-created_at")[:500]
            if str(s.migration_session_id).startswith(text)
        ]
        if len(matches) == 1:
            return matches[0]
    raise SessionNotFoundError(
        f"unknown session {session_id}", hint="List sessions with: diffmig status"
    )


def entity_counts(control: MigrationControl) -> dict[str, Any]:
    return {
        "status": control.state,
        "new": control.new_count,
        "modified": control.modified_count,
        "deleted": control.deleted_count,
        "unchanged": control.unchanged_count,
        "retry": control.retry_count,
        "processed": control.processed_count,
        "failed": control.failed_count,
        "skipped": control.skipped_count,
    }


def session_document(session: MigrationStatus) -> dict[str, Any]:
    """The `--json` session document (docs/cli.md)."""
    controls = list(session.controls.order_by("position"))
    stages = session_stages(session)
    entities = {
        c.entity_type: {**entity_counts(c), **_stage_keys(stages.of(c.entity_type))}
        for c in controls
    }
    counts = [EntityCounts.of(c) for c in controls]
    processed = sum(c.processed for c in counts)
    failed = sum(c.failed for c in counts)
    skipped = sum(c.skipped for c in counts)
    remaining = sum(c.remaining for c in counts)
    duration = session_elapsed(session)
    elapsed = duration.total_seconds() if duration is not None else 0.0
    rate = round(processed / elapsed, 1) if elapsed > 0 else 0.0
    eta = None
    # Only a running session moves toward its end: a paused or pending one has no ETA.
    if session.overall_status == SessionStatus.RUNNING and rate > 0 and remaining:
        eta = (timezone.now() + timezone.timedelta(seconds=remaining / rate)).isoformat()
    return {
        "session": {
            "id": str(session.migration_session_id),
            "status": session.overall_status,
            "started_at": session.started_at.isoformat() if session.started_at else None,
            "finished_at": session.completed_at.isoformat() if session.completed_at else None,
            "processed": processed,
            "failed": failed,
            "skipped": skipped,
            "remaining": remaining,
            "rows_per_s": rate,
            "eta": eta,
            "baseline": bool((session.options or {}).get("baseline")),
            "dry_run": bool((session.options or {}).get("dry_run")),
            "errors": (session.error_summary or {}).get("entities", {}),
            **_stage_keys(stages.session),
        },
        "entities": entities,
    }


def _stage_keys(times: StageTimes) -> dict[str, Any]:
    """Seconds per stage (engine.stages), and the wall seconds of the batches they are part of."""
    return {"stages": times.document(), "batch_seconds": times.batch_seconds}


def status_label(totals: dict[str, Any]) -> str:
    """A session's state as people read it: ``completed with 3 failed`` when records failed
    (the state itself stays ``completed``; the counts say the rest)."""
    if totals["status"] == SessionStatus.COMPLETED and totals.get("failed"):
        return f"completed with {totals['failed']} failed"
    return str(totals["status"])


def eta_label(eta: str) -> str:
    """The document's ETA (ISO time) as the time left: ``in 3 min 05 s (at 12:34:56 UTC)``."""
    moment = dt.datetime.fromisoformat(eta)
    left = max(moment - timezone.now(), dt.timedelta(0))
    return f"in {format_duration(left)} (at {moment.astimezone(dt.UTC):%H:%M:%S} UTC)"


def was_refused(session: MigrationStatus) -> bool:
    return bool((session.error_summary or {}).get("refused"))
