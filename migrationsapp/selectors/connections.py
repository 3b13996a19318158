"""Reads for the connections pages: each stored connection with the entities that use it.

"Uses" means an active mapping definition names the connection as its source or its
destination; a draft naming it is listed apart (it uses nothing until it is activated).
Nothing here opens a database: the last test result is the one stored by the Test button.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from migrationsapp.engine.connection_urls import url_target
from migrationsapp.models import Connection, SchemaMappingDefinition

DRIVERS = {
    "mysql": "MariaDB / MySQL",
    "postgresql": "PostgreSQL",
    "sqlite": "SQLite",
    "environment": "from the environment (${…})",
}


@dataclass(frozen=True)
class ConnectionUse:
    entity: str
    side: str  # source | destination
    version: int
    active: bool


@dataclass
class ConnectionRow:
    connection: Connection
    uses: list[ConnectionUse] = field(default_factory=list)

    @property
    def driver(self) -> str:
        kind = url_target(self.connection.url)[0]
        return DRIVERS.get(kind, kind)

    @property
    def active_uses(self) -> list[ConnectionUse]:
        return [use for use in self.uses if use.active]

    @property
    def draft_uses(self) -> list[ConnectionUse]:
        return [use for use in self.uses if not use.active]


def _uses(names: list[str]) -> dict[str, list[ConnectionUse]]:
    """Active definitions and never-activated drafts that name one of ``names``."""
    found: dict[str, list[ConnectionUse]] = {name: [] for name in names}
    definitions = (
        SchemaMappingDefinition.objects.filter(is_active=True)
        | SchemaMappingDefinition.objects.filter(activated_at__isnull=True)
    ).order_by("entity_type", "version")
    rows = definitions.values_list(
        "entity_type", "version", "is_active", "source_connection", "destination_connection"
    )
    for entity, version, active, source, destination in rows:
        for side, name in (("source", source), ("destination", destination)):
            if name in found:
                found[name].append(ConnectionUse(entity, side, version, active))
    return found


def connection_rows() -> list[ConnectionRow]:
    """Every stored connection, by name, with the definitions that name it."""
    connections = list(Connection.objects.order_by("name"))
    uses = _uses([c.name for c in connections])
    return [ConnectionRow(connection=c, uses=uses[c.name]) for c in connections]


def connection_row(connection: Connection) -> ConnectionRow:
    return ConnectionRow(connection=connection, uses=_uses([connection.name])[connection.name])
