"""Audit entries for what an administrator changes outside a run: mappings and connections.

An activation, an import and a connection edit each write an execution-log entry with no
session, its ``AuditAction`` code, the user as actor and a JSON context that names what
changed (the entity and its versions, the connection and which of its settings), so the
auditor's log page answers "who activated doctor v4, and what did it replace?". The entry is
written in the transaction of the change it records: both commit, or neither does.

A password is never in an entry: a connection's context says only that it changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from migrationsapp.models.choices import AuditAction, OperationType
from migrationsapp.services.logs import log_event
from migrationsapp.services.users import UNKNOWN_USER

if TYPE_CHECKING:
    from migrationsapp.models import SchemaMappingDefinition

# The seed's operation types are a run's (its CHECK constraint keeps the column to them);
# a change of what the runs will use is closest to their ``validation``.
OPERATION = OperationType.VALIDATION


def _who(actor: str) -> str:
    return actor or UNKNOWN_USER


def log_activation(
    *,
    activated: SchemaMappingDefinition,
    deactivated: SchemaMappingDefinition | None,
    actor: str,
) -> None:
    """One entry for the version made active and, when it replaced one, one for that one."""
    entity = activated.entity_type
    replaced = deactivated.version if deactivated is not None else None
    if deactivated is not None:
        log_event(
            session_id=None,
            operation=OPERATION,
            action=AuditAction.MAPPING_DEACTIVATED,
            actor=actor,
            entity=entity,
            message=f"{_who(actor)} deactivated {entity} v{replaced} "
            f"(v{activated.version} activated)",
            context={"entity": entity, "version": replaced, "replaced_by": activated.version},
        )
    log_event(
        session_id=None,
        operation=OPERATION,
        action=AuditAction.MAPPING_ACTIVATED,
        actor=actor,
        entity=entity,
        message=f"{_who(actor)} activated {entity} v{activated.version}"
        + (f" (replacing v{replaced})" if replaced is not None else ""),
        context={
            "entity": entity,
            "version": activated.version,
            "replaced_version": replaced,
            "definition_id": str(activated.pk),
        },
    )


def log_import(
    *,
    created: Sequence[tuple[str, int, int | None]],
    unchanged: Sequence[tuple[str, int]],
    connections: Sequence[str],
    actor: str,
) -> None:
    """One entry per stored import: each entity's new version (and the one it replaced),
    the entities left as they were, the connections the file names."""
    stored = ", ".join(
        f"{entity} v{version}" + (f" (replacing v{old})" if old is not None else "")
        for entity, version, old in created
    )
    log_event(
        session_id=None,
        operation=OPERATION,
        action=AuditAction.MAPPING_IMPORTED,
        actor=actor,
        message=f"{_who(actor)} imported a mapping file: "
        + (f"{stored} now active" if created else "no entity changed")
        + (f"; {len(unchanged)} unchanged" if created and unchanged else ""),
        context={
            "created": [
                {"entity": entity, "version": version, "replaced_version": old}
                for entity, version, old in created
            ],
            "unchanged": [{"entity": entity, "version": version} for entity, version in unchanged],
            "connections": list(connections),
        },
    )


def log_connection_change(
    *, name: str, created: bool, changed: Sequence[str], target: dict[str, str], actor: str
) -> None:
    """An entry for a connection created, or edited in ``changed`` (its setting names)."""
    what = "created" if created else "changed " + ", ".join(changed) + " of"
    log_event(
        session_id=None,
        operation=OPERATION,
        action=AuditAction.CONNECTION_CHANGED,
        actor=actor,
        message=f"{_who(actor)} {what} connection {name!r}",
        context={"connection": name, "created": created, "changed": list(changed), **target},
    )
