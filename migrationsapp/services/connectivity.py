"""`diffmig connections test`: reach every connection the active mappings name.

The URL shown is the one connected to, through ``redact_url``: never a password.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrationsapp.engine.connectors import redact_url
from migrationsapp.engine.errors import DiffmigError
from migrationsapp.models import SchemaMappingDefinition
from migrationsapp.services.databases import connection_spec, opened


@dataclass
class ConnectionCheck:
    name: str
    url: str
    ok: bool
    server: str = ""
    error: str = ""


def test_connections() -> list[ConnectionCheck]:
    names: set[str] = set()
    for source, destination in SchemaMappingDefinition.objects.filter(is_active=True).values_list(
        "source_connection", "destination_connection"
    ):
        names.update((source, destination))
    results = []
    for name in sorted(names):
        try:
            spec = connection_spec(name)
        except DiffmigError as error:
            results.append(ConnectionCheck(name=name, url="-", ok=False, error=str(error)))
            continue
        shown = redact_url(spec.url)
        try:
            with opened(spec) as database:
                shown = database.display_url  # the URL connected to, password hidden
                results.append(
                    ConnectionCheck(name=name, url=shown, ok=True, server=database.server_version())
                )
        except DiffmigError as error:
            results.append(ConnectionCheck(name=name, url=shown, ok=False, error=str(error)))
    return results
