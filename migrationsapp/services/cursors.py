"""Timestamp and hybrid detection on the control database: the window's store, the cursor.

``analyze_window_for`` runs ``engine.cursor.analyze_window`` for one entity: it picks the
window from the entity's cursor (or a full scan: first run, ``--baseline``, a cursor from
another mapping version or timestamp column), stages the window in the same temporary
table as hash detection, and returns the counts with the metadata that says what the mode
cannot see.

Where the cursor lives: in the analysis metadata (``cursor.end``) of the entity's most
recent *completed*, non-dry run — the analysis of the ``MigrationControl`` that completed,
latest by analysis time. An analysis writes where its window ended; that position becomes
the cursor exactly when the entity's run completes, and a failed, paused or cancelled run,
a dry run or ``diffmig analyze`` never moves it (the next run reads the same rows again).
No table of its own: deleting old analyses (retention) at worst costs one full scan.

The overlap: ``engine.cursor.DEFAULT_OVERLAP`` (5 minutes) unless the run sets another with
``RunOptions.timestamp_overlap_s`` (``diffmig run --timestamp-overlap SECONDS``; 0 turns it
off and cuts strictly after the ``(timestamp, key)`` tuple).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection

from migrationsapp.engine.connectors import Database
from migrationsapp.engine.cursor import (
    CANNOT_SEE,
    DEFAULT_OVERLAP,
    SEES,
    Cursor,
    analyze_window,
    plan_window,
)
from migrationsapp.engine.diff import AnalysisCounts
from migrationsapp.engine.mapping import EntitySpec
from migrationsapp.models import MigrationControl, QuarantinedRecord
from migrationsapp.models.choices import AuditAction, EntityState, OperationType
from migrationsapp.services.changeset import STAGE, ControlChangeSetStore
from migrationsapp.services.logs import log_event

KEYS_STAGE = "diffmig_source_all_keys"
WINDOW_MODES = ("timestamp", "hybrid")


def overlap_from_seconds(seconds: float | None) -> dt.timedelta:
    """The overlap of a run: the default unless the run gives one (0 turns it off)."""
    if seconds is None:
        return DEFAULT_OVERLAP
    if seconds < 0:
        raise ValueError("the timestamp overlap cannot be negative")
    return dt.timedelta(seconds=seconds)


def hash_metadata() -> dict[str, Any]:
    """What hash detection sees, for the analysis's metadata."""
    return {"detection": "hash", "sees": SEES["hash"], "cannot_see": CANNOT_SEE["hash"]}


def detection_note(metadata: dict[str, Any]) -> str:
    """The part of the analysis's log line that says what the window was and what is missed."""
    mode = metadata.get("detection", "hash")
    if mode not in WINDOW_MODES:
        return ""
    return (
        f"; window: {metadata['window']} — `unchanged` counts rows seen in the window, not the "
        f"table; {mode} detection cannot see {metadata['cannot_see']}"
    )


class WindowControlStore(ControlChangeSetStore):
    """The change-set store of a timestamp window (``engine.cursor.WindowChangeSetStore``).

    The window's rows go into the same stage as hash detection's; a hybrid analysis also
    stages the keys of the whole source in a second temporary table, which says what was
    deleted.
    """

    def __init__(self, *, analysis_id: uuid.UUID, entity: str, resolve_gone: bool = False) -> None:
        super().__init__(analysis_id=analysis_id, entity=entity, resolve_gone=resolve_gone)
        self._keys_stage = False

    def _ensure_keys_stage(self) -> None:
        if self._keys_stage:
            return
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {KEYS_STAGE}")
            on_commit = " ON COMMIT DROP" if self.vendor == "postgresql" else ""
            cursor.execute(
                f"CREATE TEMPORARY TABLE {KEYS_STAGE} (key_text text PRIMARY KEY){on_commit}"
            )
        self._keys_stage = True

    def add_source_keys(self, key_texts: list[str]) -> None:
        self._ensure_keys_stage()
        if not key_texts:
            return
        with connection.cursor() as cursor:
            if self.vendor == "postgresql":
                import psycopg

                try:
                    with cursor.cursor.copy(f"COPY {KEYS_STAGE} (key_text) FROM STDIN") as copy:
                        for key_text in key_texts:
                            copy.write_row((key_text,))
                except psycopg.IntegrityError as exc:
                    raise IntegrityError(str(exc)) from exc
            else:
                cursor.executemany(
                    f"INSERT INTO {KEYS_STAGE} (key_text) VALUES (%s)", [(k,) for k in key_texts]
                )

    def unstaged_retry_keys(self) -> list[list[Any]]:
        quarantine = QuarantinedRecord._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT q.legacy_key FROM {quarantine} q
                WHERE q.entity_type = %s AND q.resolved_at IS NULL
                  AND NOT EXISTS (SELECT 1 FROM {STAGE} s WHERE s.key_text = q.legacy_key_text)
                ORDER BY q.legacy_key_text
                """,
                [self.entity],
            )
            rows = cursor.fetchall()
        # jsonb comes back decoded on PostgreSQL, as text on SQLite.
        return [json.loads(key) if isinstance(key, str) else key for (key,) in rows]

    def classify_window(
        self, *, baseline: bool, mapping_version: int, detect_deletes: bool
    ) -> AnalysisCounts:
        self.index_stage()
        present = None
        if detect_deletes:
            self._ensure_keys_stage()
            with connection.cursor() as cursor:
                # The window read the source after the key scan: whatever it found exists.
                cursor.execute(
                    f"""
                    INSERT INTO {KEYS_STAGE} (key_text)
                    SELECT s.key_text FROM {STAGE} s
                    WHERE NOT EXISTS (SELECT 1 FROM {KEYS_STAGE} k WHERE k.key_text = s.key_text)
                    """
                )
            present = KEYS_STAGE
        counts = self.classify(
            baseline=baseline, mapping_version=mapping_version, present_keys=present
        )
        if self._keys_stage and self.vendor != "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {KEYS_STAGE}")
        return counts


@dataclass(frozen=True)
class StoredCursor:
    """An entity's cursor and the run it comes from."""

    cursor: Cursor
    timestamp_column: str
    mapping_version: int | None
    analysis_id: uuid.UUID
    session_id: uuid.UUID


def stored_cursor(entity: str) -> StoredCursor | None:
    """Where the analysis of the entity's most recent completed, non-dry run stopped."""
    control = (
        MigrationControl.objects.filter(
            entity_type=entity, state=EntityState.COMPLETED, analysis__isnull=False
        )
        .exclude(session__options__dry_run=True)
        .select_related("analysis")
        .order_by("-analysis__analysis_timestamp")
        .first()
    )
    if control is None:
        return None
    metadata = control.analysis.analysis_metadata or {}
    end = Cursor.from_dict((metadata.get("cursor") or {}).get("end"))
    if metadata.get("detection") not in WINDOW_MODES or end is None:
        return None  # the last completed run used hash detection, or saw no timestamp
    return StoredCursor(
        cursor=end,
        timestamp_column=metadata.get("timestamp_column", ""),
        mapping_version=control.analysis.mapping_version,
        analysis_id=control.analysis.pk,
        session_id=control.session_id,
    )


def current_cursor(
    entity: EntitySpec, *, mapping_version: int, baseline: bool
) -> tuple[Cursor | None, str | None]:
    """The entity's cursor, and why the analysis reads every row instead (None: it does not)."""
    stored = stored_cursor(entity.name)
    cursor = None if stored is None else stored.cursor
    if baseline:
        return cursor, "--baseline ignores the cursor"
    if stored is None:
        return None, "no cursor yet: the first run reads every row"
    if stored.timestamp_column != entity.timestamp_column:
        return cursor, (
            f"the timestamp column changed ({stored.timestamp_column} → {entity.timestamp_column})"
        )
    if stored.mapping_version != mapping_version:
        return cursor, (
            f"the cursor belongs to mapping version {stored.mapping_version}, this run uses "
            f"{mapping_version}: every row is modified"
        )
    return cursor, None


def analyze_window_for(
    *,
    source: Database,
    entity: EntitySpec,
    columns: tuple[str, ...],
    store: WindowControlStore,
    mapping_version: int,
    baseline: bool,
    overlap: dt.timedelta | None = None,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[AnalysisCounts, dict[str, Any]]:
    """Analyse one timestamp or hybrid entity (the change set goes to ``store``'s analysis)."""
    overlap = DEFAULT_OVERLAP if overlap is None else overlap
    column = entity.timestamp_column or ""
    info = source.require_table(entity.source_table).column(column)
    kind = info.kind if info is not None else "other"
    start, full_scan_reason = current_cursor(
        entity, mapping_version=mapping_version, baseline=baseline
    )
    window = plan_window(
        start, column=column, kind=kind, overlap=overlap, full_scan_reason=full_scan_reason
    )
    analysis = analyze_window(
        source=source,
        entity=entity,
        hashed_columns=columns,
        store=store,
        mapping_version=mapping_version,
        window=window,
        start=start,
        baseline=baseline,
        batch_size=batch_size or 10_000,
        progress=progress,
    )
    metadata: dict[str, Any] = {
        "detection": entity.detection,
        "sees": SEES[entity.detection],
        "cannot_see": CANNOT_SEE[entity.detection],
        "timestamp_column": column,
        "overlap_seconds": overlap.total_seconds(),
        "window": window.description,
        "full_scan": window.is_full_scan,
        "cursor": {
            "start": start.as_dict() if start else None,
            "end": analysis.end.as_dict() if analysis.end else None,
        },
        "window_rows": analysis.window_rows,
        "retried_outside_window": analysis.retried_outside,
        "unchanged_means": "rows seen in the window with an unchanged hash, not the whole table",
        "null_timestamps": "always read (a row without a timestamp cannot be placed)",
    }
    if analysis.source_keys is not None:
        metadata["source_keys"] = analysis.source_keys
    return analysis.counts, metadata


def announce_cursor(*, control_id: uuid.UUID) -> Cursor | None:
    """Log where the entity's cursor now stands, after its run completed.

    Completing is what moves the cursor (see the module's docstring); this says so in the
    session's log. Returns the new position, or None when nothing moved (hash detection,
    a dry run, no timestamp seen, or a newer completed run already holds the cursor).
    """
    control = MigrationControl.objects.get(pk=control_id)
    stored = stored_cursor(control.entity_type)
    if stored is None or stored.analysis_id != control.analysis_id:
        return None
    end = stored.cursor
    log_event(
        session_id=control.session_id,
        entity=control.entity_type,
        operation=OperationType.CHECKPOINT_SAVE,
        action=AuditAction.ENTITY_CURSOR_ADVANCED,
        message=f"{control.entity_type}: timestamp cursor advanced to "
        f"({end.timestamp}, {end.key_text})",
        context={"cursor": end.as_dict(), "analysis_id": str(stored.analysis_id)},
    )
    return end
