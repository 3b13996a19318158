"""What executing a session needs, opened once per executor or unit: its options, the active
mapping, the source and the destination open, the lease owner, the batch limit."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from django.utils import timezone

from migrationsapp.engine.connectors import Database
from migrationsapp.engine.gc_policy import fewer_collections
from migrationsapp.engine.ports import FaultHook
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.services.mappings import ActiveMapping, load_active_mapping
from migrationsapp.services.run_connections import ConnectionOpenError, open_for_run
from migrationsapp.services.runs.launch import RunOptions


class RunObserver(Protocol):
    """Told how a session advances (the CLI's progress bars)."""

    def phase_started(self, entity: str, phase: str, total: int) -> None: ...

    def advanced(self, entity: str, phase: str, rows: int) -> None: ...


@dataclass
class RunContext:
    session: MigrationStatus
    active: ActiveMapping
    source: Database
    destination: Database
    options: RunOptions
    today: dt.date
    owner: str  # the lease owner token of this executor or unit
    fault: FaultHook | None
    observer: RunObserver | None = None
    # At most this many batches per step, then the step returns "slice" (a unit of an RQ
    # job, services.dispatch); None: every batch of the phase (the in-process executor).
    max_batches: int | None = None

    @property
    def in_process(self) -> bool:
        """Whether one process walks the whole session (not a unit of an RQ job)."""
        return self.max_batches is None

    def mapping_version_of(self, control: MigrationControl) -> int:
        """The mapping version the entity runs under: the one it started with, else the
        active mapping's."""
        return control.mapping_version or self.active.versions[control.entity_type]


@contextmanager
def session_context(
    *,
    session_id: uuid.UUID,
    owner: str | None = None,
    fault: FaultHook | None = None,
    observer: RunObserver | None = None,
    max_batches: int | None = None,
) -> Iterator[RunContext]:
    """What executing a session needs, both databases open (closed at the end)."""
    session = MigrationStatus.objects.get(migration_session_id=session_id)
    saved = session.options or {}
    active = load_active_mapping()
    # Both connections are opened (connected) before any work: one that cannot be opened
    # raises ConnectionOpenError, which the executors turn into a failed entity.
    source = open_for_run(active.mapping.source)
    try:
        destination = open_for_run(active.mapping.destination)
    except ConnectionOpenError:
        source.close()
        raise
    context = RunContext(
        session=session,
        active=active,
        source=source,
        destination=destination,
        options=RunOptions.from_saved(saved),
        today=dt.date.fromisoformat(saved["today"]) if saved.get("today") else timezone.localdate(),
        owner=owner or uuid.uuid4().hex,
        fault=fault,
        observer=observer,
        max_batches=max_batches,
    )
    try:
        with fewer_collections():  # rarer garbage collections while it runs (engine.gc_policy)
            yield context
    finally:
        source.close()
        destination.close()
