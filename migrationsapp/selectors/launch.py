"""Reads for the launch form: which entities may run now, and the analysis shown before a launch.

An entity is busy when it, or an entity it depends on, is held by an active run: a launch
that includes it would be refused (``services.runs.LaunchRefusedError``), so the form says
so up front and names the holding session. The analysis rows carry the delete guard's
verdict, so that the page shows a refusal before the operator confirms.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from migrationsapp.engine.diff import AnalysisCounts, check_delete_guard
from migrationsapp.engine.errors import DeleteGuardError
from migrationsapp.engine.mapping import EntitySpec
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import ACTIVE_ENTITY_STATES
from migrationsapp.selectors.counts import EntityCounts, percent_of
from migrationsapp.selectors.definitions import active_definitions
from migrationsapp.selectors.sessions import ACTIVE_SESSION


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


# The counts an analysis finds (engine.diff.AnalysisCounts), by the names EntityCounts uses.
ANALYSIS_KINDS = ("new", "modified", "deleted", "unchanged", "retry")


@dataclass(frozen=True, kw_only=True)
class AnalysisRow(EntityCounts):
    """One entity of the analysis shown before a launch (nothing is processed yet)."""

    entity: str
    source_records: int
    migrated_records: int
    # Changes as a share of every record involved (the source's plus the deleted ones).
    change_pct: float
    # Why the delete guard would refuse this entity, or "".
    guard: str = ""


def analysis_row(spec: EntitySpec, counts: AnalysisCounts) -> AnalysisRow:
    guard = ""
    try:
        check_delete_guard(spec, counts)
    except DeleteGuardError as error:
        guard = str(error)
    return AnalysisRow(
        **{kind: getattr(counts, kind) for kind in ANALYSIS_KINDS},
        entity=spec.name,
        source_records=counts.source_count,
        migrated_records=counts.mapped_count,
        change_pct=percent_of(counts.changes, counts.source_count + counts.deleted),
        guard=guard,
    )
