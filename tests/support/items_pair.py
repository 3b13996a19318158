"""An ``items`` → ``item`` pair on the real services for the memory tests: MariaDB's ``items``
(text key ``code``, ``label``, ``amount`` and one more column) and PostgreSQL's ``item``,
with the mapping imported.

The tests fill ``items`` with MariaDB's sequence engine; the fourth column is either left
unmapped (what an analysis hashes is the mapped columns only) or mapped to a column of its
own on the destination.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from migrationsapp.services.mappings import import_mapping_text

MAPPING = """
version: 1
connections:
  legacy: {{url: "${{DIFFMIG_LEGACY_URL}}", timezone: UTC}}
  target: {{url: "${{DIFFMIG_TARGET_URL}}"}}
source: legacy
destination: target
entities:
  - name: item
    source_table: items
    source_key: [code]
    destination_table: item
    destination_key: id
    fields:
      - {{source: code, destination: code}}
      - {{source: label, destination: label, transform: trim}}
      - {{source: amount, destination: amount}}
{extra_field}"""


@dataclass(frozen=True)
class ExtraColumn:
    """The fourth source column: its name and MariaDB type, and the destination column's
    type when the mapping copies it (None: not mapped, and not on the destination)."""

    name: str
    source_type: str
    destination_type: str | None = None


@contextmanager
def items_pair(
    mysql_to_pg: tuple[str, str], extra: ExtraColumn
) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """The two tables in the scratch databases of ``mysql_to_pg`` and the mapping imported;
    yields the legacy and destination engines, disposed at the end."""
    legacy_url, target_url = mysql_to_pg
    legacy = sa.create_engine(
        sa.make_url(legacy_url).set(drivername="mysql+pymysql", query={"charset": "utf8mb4"})
    )
    target = sa.create_engine(sa.make_url(target_url).set(drivername="postgresql+psycopg"))
    mapped = extra.destination_type is not None
    with legacy.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE items (code VARCHAR(40) NOT NULL PRIMARY KEY, "
            f"label VARCHAR(60) NOT NULL, amount INT NULL, {extra.name} {extra.source_type}) "
            "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )
    with target.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE item (id UUID PRIMARY KEY, code TEXT NOT NULL, label TEXT NOT NULL, "
            "amount INTEGER" + (f", {extra.name} {extra.destination_type}" if mapped else "") + ")"
        )
    field = f"      - {{source: {extra.name}, destination: {extra.name}}}\n" if mapped else ""
    import_mapping_text(text=MAPPING.format(extra_field=field))
    try:
        yield legacy, target
    finally:
        legacy.dispose()
        target.dispose()
