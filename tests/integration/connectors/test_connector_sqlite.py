"""SQLite read through the connectors, unreachable servers, and placeholders in a URL."""

from __future__ import annotations

import pytest

from migrationsapp.engine.connectors import (
    ConnectionPolicy,
    ConnectionSpec,
    Database,
    open_database,
)
from migrationsapp.engine.errors import SourceUnavailableError
from tests.integration.connectors.support import execute

pytestmark = pytest.mark.services


# --- SQLite and unreachable servers -----------------------------------------------------


def test_sqlite_introspection_and_version(sqlite_url: str, sqlite_db: Database) -> None:
    execute(
        sqlite_url,
        "CREATE TABLE kinds (id INTEGER PRIMARY KEY, flag BOOLEAN, money NUMERIC(10,2), "
        "day DATE, at DATETIME, name VARCHAR(10) NOT NULL DEFAULT 'x', raw BLOB, anything)",
    )
    info = sqlite_db.table("kinds")
    assert info is not None
    assert {n: c.kind for n, c in info.columns.items()} == {
        "id": "integer",
        "flag": "boolean",
        "money": "numeric",
        "day": "date",
        "at": "datetime",
        "name": "text",
        "raw": "bytes",
        "anything": "other",
    }
    assert (info.columns["id"].autoincrement, info.columns["id"].nullable) == (True, False)
    assert (info.columns["name"].has_default, info.columns["name"].nullable) == (True, False)
    assert sqlite_db.server_version().startswith("SQLite 3.")


@pytest.mark.parametrize(
    "url",
    ["mysql://root@127.0.0.1:1/nothing", "postgresql://postgres@127.0.0.1:1/nothing"],
    ids=["mysql", "postgresql"],
)
def test_unreachable_database_raises_source_unavailable_naming_the_connection(
    url: str, policy: ConnectionPolicy
) -> None:
    db = open_database(ConnectionSpec(name="gone", url=url), policy, environ={})
    try:
        with pytest.raises(SourceUnavailableError, match=r"database 'gone' .*127\.0\.0\.1:1"):
            db.server_version()
    finally:
        db.close()


def test_placeholders_are_expanded_when_opening(mysql_url: str, policy: ConnectionPolicy) -> None:
    db = open_database(
        ConnectionSpec(name="legacy", url="${DIFFMIG_LEGACY_URL}"),
        policy,
        environ={"DIFFMIG_LEGACY_URL": mysql_url},
    )
    try:
        assert db.server_version().startswith("MariaDB")
    finally:
        db.close()
