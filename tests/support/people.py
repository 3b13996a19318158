"""A tiny legacy → destination pair on SQLite for the web pages' tests: ``people`` → ``person``.

Runs on the embedded default (no services). The mapping trims names, lower-cases e-mails and
checks their format, so the row with ``not-an-email`` is quarantined by a run and marked
as failing by a preview.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from migrationsapp.selectors.sessions import session_document
from migrationsapp.services.mappings import import_mapping_text
from migrationsapp.services.runs import RunOptions, execute_session, launch_session

ENTITY = "person"
ROWS = [(1, " Ann ", "ANN@x.org"), (2, "Bob", "not-an-email"), (3, "Cy", "cy@x.org")]

MAPPING = """\
version: 1
connections:
  legacy: {{url: "sqlite:///{root}/legacy.db"}}
  target: {{url: "sqlite:///{root}/target.db"}}
source: legacy
destination: target
entities:
  - name: person
    source_table: people
    source_key: [id]
    destination_table: person
    destination_key: id
    fields:
      - {{source: id, destination: legacy_id}}
      - {{source: name, destination: name, transform: trim}}
      - {{source: email, destination: email, transform: email}}
    validation:
      - {{field: email, rule: format, params: {{pattern: email}}}}
"""


@dataclass
class People:
    root: Path
    legacy: sa.Engine
    target: sa.Engine

    @property
    def mapping_text(self) -> str:
        return MAPPING.format(root=self.root)

    def import_mapping(self) -> None:
        import_mapping_text(text=self.mapping_text, user="tests")

    def legacy_sql(self, statement: str, **params) -> None:
        with self.legacy.begin() as conn:
            conn.execute(sa.text(statement), params)

    def destination_rows(self) -> list[tuple]:
        with self.target.connect() as conn:
            return list(
                conn.execute(sa.text("SELECT legacy_id, name, email FROM person ORDER BY 1"))
            )

    def dispose(self) -> None:
        self.legacy.dispose()
        self.target.dispose()


def create_people(root: Path) -> People:
    """The two SQLite files under ``root`` (which must be ``DIFFMIG_SQLITE_ROOT``)."""
    legacy = sa.create_engine(f"sqlite:///{root}/legacy.db")
    target = sa.create_engine(f"sqlite:///{root}/target.db")
    with legacy.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        conn.execute(
            sa.text("INSERT INTO people (id, name, email) VALUES (:id, :name, :email)"),
            [{"id": i, "name": n, "email": e} for i, n, e in ROWS],
        )
    with target.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE person (id UUID PRIMARY KEY, legacy_id INTEGER NOT NULL, "
            "name TEXT NOT NULL, email TEXT)"
        )
    return People(root=root, legacy=legacy, target=target)


def run(*, baseline: bool = False) -> dict:
    """A whole run, in this process; its session document."""
    session = launch_session(options=RunOptions(baseline=baseline), user="tests")
    return session_document(execute_session(session_id=session.migration_session_id))
