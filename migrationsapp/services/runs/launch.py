"""Launching a session: its options, the entities it covers, the checks, its control rows.

A session covers the entities asked for and those they depend on, in dependency order. A
launch creates it ``pending`` with one control row per entity; where it then executes is
``start.start_run``'s choice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from migrationsapp.engine.errors import TerminalError
from migrationsapp.engine.mapping import dependency_order
from migrationsapp.engine.outcomes import Phase
from migrationsapp.engine.ports import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import (
    ACTIVE_ENTITY_STATES,
    AuditAction,
    OperationType,
    RunMode,
)
from migrationsapp.services.logs import log_event
from migrationsapp.services.mappings import ActiveMapping, load_active_mapping


class LaunchRefusedError(TerminalError):
    """A launch that cannot start: an entity is already running, or unknown."""


@dataclass(frozen=True)
class RunOptions:
    baseline: bool = False
    dry_run: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    max_delete_share: float | None = None
    # Deletes per entity that the operator saw and confirmed before launching (the web's
    # two-step launch); an entity whose analysis finds more is refused. None: no check.
    confirmed_deletes: dict[str, int] | None = None
    # detection: timestamp | hybrid — seconds the window reaches back before the cursor
    # (None: engine.cursor.DEFAULT_OVERLAP, 5 minutes; 0: strictly after the cursor tuple).
    timestamp_overlap_s: float | None = None

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any]) -> RunOptions:
        """The options a session was launched with, as ``launch_session`` stored them."""
        return cls(
            baseline=bool(saved.get("baseline")),
            dry_run=bool(saved.get("dry_run")),
            batch_size=int(saved.get("batch_size") or DEFAULT_BATCH_SIZE),
            max_delete_share=saved.get("max_delete_share"),
            confirmed_deletes=saved.get("confirmed_deletes"),
            timestamp_overlap_s=saved.get("timestamp_overlap_s"),
        )


def entities_with_dependencies(active: ActiveMapping, entities: Sequence[str] | None) -> list[str]:
    """The entities asked for and those they depend on, in dependency order."""
    specs = {spec.name: spec for spec in active.mapping.entities}
    if not entities:
        return dependency_order(list(specs.values()))
    wanted: set[str] = set()
    pending = list(entities)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending.extend(active.entity(name).depends_on)
    return [name for name in dependency_order(list(specs.values())) if name in wanted]


def _check_options(options: RunOptions) -> None:
    if not 1 <= options.batch_size <= MAX_BATCH_SIZE:
        raise LaunchRefusedError(
            f"the batch size must be between 1 and {MAX_BATCH_SIZE:,} (got {options.batch_size:,})"
        )
    if options.timestamp_overlap_s is not None and options.timestamp_overlap_s < 0:
        raise LaunchRefusedError("--timestamp-overlap cannot be negative")


def launch_session(
    *, entities: Sequence[str] | None = None, options: RunOptions | None = None, user: str = ""
) -> MigrationStatus:
    """Create a pending session with one control row per entity.

    A second launch of an entity that is already active fails at the database (partial
    unique index), and the refusal names the session that holds it.
    """
    options = options or RunOptions()
    _check_options(options)
    active = load_active_mapping()
    names = entities_with_dependencies(active, entities)
    if not names:
        raise LaunchRefusedError(
            "there is no active mapping to run",
            hint="Import one first: diffmig mappings import FILE",
        )
    mode = RunMode.BASELINE if options.baseline else RunMode.DIFFERENTIAL
    try:
        with transaction.atomic():
            session = MigrationStatus.objects.create(
                options={
                    **asdict(options),
                    "entities": names,
                    "today": timezone.localdate().isoformat(),
                },
                launched_by=user,
                entities_pending=names,
            )
            for position, name in enumerate(names):
                spec = active.entity(name)
                MigrationControl.objects.create(
                    session=session,
                    entity_type=name,
                    mode=mode,
                    position=position,
                    depends_on=[d for d in spec.depends_on if d in names],
                    mapping_version=active.versions[name],
                    phase=Phase.ANALYZE,
                )
    except IntegrityError as exc:
        holder = (
            MigrationControl.objects.filter(entity_type__in=names, state__in=ACTIVE_ENTITY_STATES)
            .values_list("entity_type", "session_id")
            .first()
        )
        if holder is None:
            raise
        raise LaunchRefusedError(
            f"entity {holder[0]!r} is already running in session {holder[1]}",
            hint=f"Wait for it, or pause/cancel it: diffmig cancel {holder[1]}",
        ) from exc
    log_event(
        session_id=session.migration_session_id,
        operation=OperationType.CHECKPOINT_SAVE,
        action=AuditAction.SESSION_LAUNCHED,
        actor=user,
        message=f"session launched for {', '.join(names)}"
        + (" (baseline)" if options.baseline else "")
        + (" (dry run)" if options.dry_run else ""),
        context={"options": session.options, "user": user},
    )
    return session
