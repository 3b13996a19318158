"""A test's own legacy and destination tables, and its mapping imported as an operator does it.

The tests that set a pair up this way write their tables in plain SQL (``create_tables``)
and only the entities of their mapping: ``import_mapping_file`` puts the pair's connections
in front (``DIFFMIG_LEGACY_URL`` and ``DIFFMIG_TARGET_URL``, which the ``mysql_to_pg``
fixture sets, or a test on SQLite), writes the file and imports it with
``diffmig mappings import``, which must succeed.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.integration.conftest import cli

CONNECTIONS = """\
version: 1
connections:
  legacy: {url: "${DIFFMIG_LEGACY_URL}"}
  target: {url: "${DIFFMIG_TARGET_URL}"}
source: legacy
destination: target
entities:
"""


def create_tables(engine: sa.Engine, *statements: str) -> None:
    """Run ``statements`` (tables, indexes, rows) in one transaction."""
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def import_mapping_file(path: Path, entities: str) -> None:
    """Write the mapping of ``entities`` (the YAML list under ``entities:``) to ``path`` and
    import it by the command line."""
    path.write_text(CONNECTIONS + entities, encoding="utf-8")
    result = cli("mappings", "import", str(path))
    assert result.code == 0, result.out + result.err
