"""Reach a connection: `diffmig connections test` (every connection the active mappings name)
and the connections page's Test button (one connection, its result kept on it).

The URL shown is the one connected to, through ``redact_url``: never a password. A test
creates nothing: SQLite would create a missing file on connecting, so a SQLite connection
whose file does not exist fails without being opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from migrationsapp.engine.connectors import ConnectionSpec, redact_url, resolved_url
from migrationsapp.engine.errors import ConfigurationError, DiffmigError
from migrationsapp.models import Connection, SchemaMappingDefinition
from migrationsapp.services.databases import connection_policy, connection_spec, opened


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
    return [check_connection(name) for name in sorted(names)]


def check_connection(name: str) -> ConnectionCheck:
    """Connect to the stored connection ``name`` and ask its server version."""
    try:
        spec = connection_spec(name)
    except DiffmigError as error:
        return ConnectionCheck(name=name, url="-", ok=False, error=str(error))
    shown = redact_url(spec.url)
    try:
        refuse_missing_sqlite_file(spec)
        with opened(spec) as database:
            shown = database.display_url  # the URL connected to, password hidden
            return ConnectionCheck(name=name, url=shown, ok=True, server=database.server_version())
    except DiffmigError as error:
        return ConnectionCheck(name=name, url=shown, ok=False, error=str(error))


def test_and_record_connection(name: str) -> ConnectionCheck:
    """Test one stored connection and keep the result on it (the connections page shows it)."""
    check = check_connection(name)
    result = check.server if check.ok else check.error
    field = Connection._meta.get_field("last_test_result")
    Connection.objects.filter(name=name).update(
        last_tested_at=timezone.now(),
        last_test_ok=check.ok,
        last_test_result=result[: field.max_length],
    )
    return check


def refuse_missing_sqlite_file(spec: ConnectionSpec) -> None:
    """A SQLite connection whose file does not exist: an error, before SQLite creates it."""
    url = resolved_url(spec, connection_policy(), os.environ)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise ConfigurationError(
            f"connection {spec.name!r}: the SQLite file {url.database} does not exist "
            "(check the URL's path; a test never creates the file)"
        )
