"""Two entities on SQLite whose parent is refused: ``teams`` → ``team``, ``members`` → ``member``.

Team 2 has no name (a ``required`` rule refuses it), so its members 21 and 22 fail for their
missing parent: what the quarantine page nests under the parent. Runs on the embedded default
(no services); files live under a test's own ``DIFFMIG_SQLITE_ROOT``.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from migrationsapp.services.mappings import import_mapping_text

MAPPING = """\
version: 1
connections:
  legacy: {{url: "sqlite:///{root}/legacy.db"}}
  target: {{url: "sqlite:///{root}/target.db"}}
source: legacy
destination: target
entities:
  - name: team
    source_table: teams
    source_key: [id]
    destination_table: team
    destination_key: id
    fields:
      - {{source: id, destination: legacy_id}}
      - {{source: name, destination: name}}
    validation:
      - {{field: name, rule: required}}
  - name: member
    source_table: members
    source_key: [id]
    destination_table: member
    destination_key: id
    depends_on: [team]
    fields:
      - {{source: id, destination: legacy_id}}
      - {{source: team_id, destination: team_id, reference: team}}
"""


def create_teams(root: Path) -> None:
    """The legacy and destination files under ``root``, and the mapping imported."""
    legacy = sa.create_engine(f"sqlite:///{root}/legacy.db")
    target = sa.create_engine(f"sqlite:///{root}/target.db")
    try:
        with legacy.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT)")
            conn.exec_driver_sql("CREATE TABLE members (id INTEGER PRIMARY KEY, team_id INTEGER)")
            conn.exec_driver_sql("INSERT INTO teams VALUES (1, 'Blue'), (2, NULL)")
            conn.exec_driver_sql("INSERT INTO members VALUES (11, 1), (21, 2), (22, 2)")
        with target.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE team (id UUID PRIMARY KEY, legacy_id INTEGER NOT NULL, name TEXT)"
            )
            conn.exec_driver_sql(
                "CREATE TABLE member (id UUID PRIMARY KEY, legacy_id INTEGER NOT NULL, "
                "team_id UUID REFERENCES team(id))"
            )
    finally:
        legacy.dispose()
        target.dispose()
    import_mapping_text(text=MAPPING.format(root=root), user="tests")
