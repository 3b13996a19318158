"""Opening the databases a mapping names, under the settings' connection policy.

The policy knows the control database twice over: as Django opened it, and as it was
configured (they differ only while Django runs on a test database); a connection may
reach neither.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections

from migrationsapp.engine.connection_policy import control_from_settings
from migrationsapp.engine.connectors import (
    ConnectionPolicy,
    ConnectionSpec,
    Database,
    open_database,
)
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.models import Connection
from migrationsapp.services.connections import spec_of


def connection_policy() -> ConnectionPolicy:
    configured = getattr(settings, "DIFFMIG_CONTROL_DATABASE", None) or {}
    return ConnectionPolicy(
        allowed_hosts=tuple(settings.DIFFMIG_ALLOWED_DB_HOSTS),
        sqlite_root=settings.DIFFMIG_SQLITE_ROOT,
        control=control_from_settings([connections["default"].settings_dict, configured]),
    )


def connection_spec(name: str) -> ConnectionSpec:
    """The stored connection ``name`` with its password, ready to open."""
    try:
        connection = Connection.objects.get(name=name)
    except Connection.DoesNotExist as exc:
        raise ConfigurationError(
            f"connection {name!r} is not configured",
            hint="Import a mapping file that defines it (diffmig mappings import FILE).",
        ) from exc
    return spec_of(connection)


def open_named(name: str) -> Database:
    return open_database(connection_spec(name), connection_policy(), os.environ)


@contextmanager
def opened(spec: ConnectionSpec) -> Iterator[Database]:
    database = open_database(spec, connection_policy(), os.environ)
    try:
        yield database
    finally:
        database.close()
