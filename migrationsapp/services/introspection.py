"""Reading a mapping definition's two tables from their live databases, for the editor.

The mapping editor's pickers and checks need the columns of the definition's source and
destination tables. Each named connection is opened once per request (with its stored
password, under the settings' connection policy) and closed at once. A database that cannot
be reached, a connection that is not configured or a table that does not exist is a
warning, not an error: the editor then offers free text and skips the table checks.
"""

from __future__ import annotations

import sqlalchemy as sa

from migrationsapp.engine.errors import DiffmigError
from migrationsapp.engine.introspect import TableInfo
from migrationsapp.models import SchemaMappingDefinition
from migrationsapp.selectors.mapping_views import IntrospectedTables
from migrationsapp.services.databases import open_named


def _read_table(connection: str, table: str, side: str) -> tuple[TableInfo | None, bool, str]:
    """(table, database reached, warning) for one side of a definition."""
    if not table:
        return None, True, f"no {side} table is set yet"
    try:
        database = open_named(connection)
        try:
            info = database.table(table)
        finally:
            database.close()
    except (DiffmigError, sa.exc.SQLAlchemyError) as exc:
        return None, False, f"{side} database {connection!r} cannot be read ({exc})"
    if info is None:
        return None, True, f"{side} table {table!r} does not exist in {connection!r}"
    return info, True, ""


def introspect_tables(definition: SchemaMappingDefinition) -> IntrospectedTables:
    """Read both tables once (call once per request and pass the result along)."""
    source, source_reached, source_warning = _read_table(
        definition.source_connection, definition.source_table, "source"
    )
    destination, destination_reached, destination_warning = _read_table(
        definition.destination_connection, definition.destination_table, "destination"
    )
    return IntrospectedTables(
        source=source,
        destination=destination,
        source_reached=source_reached,
        destination_reached=destination_reached,
        warnings=[w for w in (source_warning, destination_warning) if w],
    )
