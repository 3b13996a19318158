"""Scratch databases for the connector tests, one of each dialect, made once for the package
(tests/databases.py, random names) and dropped at its end; tests that change data make their
own table, so that they do not depend on order. ``source`` runs a test on every dialect."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from migrationsapp.engine.connectors import ConnectionPolicy, Database
from tests.databases import (
    create_mysql_database,
    create_postgres_database,
    drop_mysql_database,
    drop_postgres_database,
    services_policy,
)
from tests.integration.connectors.support import Source, open_legacy


@pytest.fixture(scope="package")
def sqlite_root(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("sqlite_root")


@pytest.fixture(scope="package")
def policy(sqlite_root: pathlib.Path) -> ConnectionPolicy:
    return services_policy(sqlite_root)


@pytest.fixture(scope="package")
def mysql_url() -> Iterator[str]:
    url = create_mysql_database("connectors")
    yield url
    drop_mysql_database(url)


@pytest.fixture(scope="package")
def postgresql_url() -> Iterator[str]:
    url = create_postgres_database("connectors")
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="package")
def sqlite_url(sqlite_root: pathlib.Path) -> str:
    return f"sqlite:///{sqlite_root / 'legacy.db'}"


@pytest.fixture(scope="package")
def mysql_db(mysql_url: str, policy: ConnectionPolicy) -> Iterator[Database]:
    db = open_legacy(mysql_url, policy)
    yield db
    db.close()


@pytest.fixture(scope="package")
def postgresql_db(postgresql_url: str, policy: ConnectionPolicy) -> Iterator[Database]:
    db = open_legacy(postgresql_url, policy)
    yield db
    db.close()


@pytest.fixture(scope="package")
def sqlite_db(sqlite_url: str, policy: ConnectionPolicy) -> Iterator[Database]:
    db = open_legacy(sqlite_url, policy)
    yield db
    db.close()


@pytest.fixture(scope="package", params=["mysql", "postgresql", "sqlite"])
def source(request: pytest.FixtureRequest) -> Source:
    dialect = request.param
    return Source(
        dialect=dialect,
        url=request.getfixturevalue(f"{dialect}_url"),
        db=request.getfixturevalue(f"{dialect}_db"),
    )
