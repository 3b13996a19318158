"""A small two-entity legacy source for fault tests: groups and the items that belong to them.

MariaDB holds ``grp`` (id, name) and ``item`` (id, grp_id, label, amount, note; ``note`` is
not mapped, so changing it alone is no modification); PostgreSQL holds ``grp`` and ``item``
with UUID keys and a foreign key from item to grp. ``Source`` is the legacy data as the test
wrote it, and ``expected_destination`` what the mapping makes of it, computed here without
the engine. The changes keep the legacy data consistent (an item's group exists), so every
record migrates and the destination must equal ``expected_destination`` exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from migrationsapp.models import RecordMap
from migrationsapp.services.mappings import import_mapping_text

ENTITIES = ("grp", "item")

SOURCE_DDL = (
    "CREATE TABLE grp (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE item (id INT PRIMARY KEY, grp_id INT NULL, label VARCHAR(40) NOT NULL, "
    "amount INT NULL, note VARCHAR(40) NULL) ENGINE=InnoDB",
)
DESTINATION_DDL = (
    "CREATE TABLE grp (id UUID PRIMARY KEY, legacy_id INTEGER NOT NULL, name TEXT NOT NULL)",
    "CREATE TABLE item (id UUID PRIMARY KEY, legacy_id INTEGER NOT NULL, "
    "grp_id UUID NULL REFERENCES grp (id), label TEXT NOT NULL, amount INTEGER)",
)
MAPPING = """
version: 1
connections:
  legacy: {{url: "${{DIFFMIG_LEGACY_URL}}", timezone: UTC}}
  target: {{url: "${{DIFFMIG_TARGET_URL}}"}}
source: legacy
destination: target
entities:
  - name: grp
    source_table: grp
    source_key: [id]
    destination_table: grp
    destination_key: id
    deletes: hard
    max_delete_share: 1.0
    fields:
      - {{source: id, destination: legacy_id}}
      - {{source: name, destination: name, transform: trim}}
  - name: item
    source_table: {item_table}
    source_key: [id]
    destination_table: item
    destination_key: id
    depends_on: [grp]
    deletes: hard
    max_delete_share: 1.0
    fields:
      - {{source: id, destination: legacy_id}}
      - {{source: grp_id, destination: grp_id, reference: grp}}
      - {{source: label, destination: label, transform: "upper(trim(value))"}}
      - {{source: amount, destination: amount}}
"""

ItemRow = tuple[int | None, str, int | None]  # grp_id, label, amount


@dataclass
class Source:
    """The legacy rows as the test wrote them (what the mapping reads, and the unmapped note)."""

    groups: dict[int, str] = field(default_factory=dict)
    items: dict[int, ItemRow] = field(default_factory=dict)
    notes: dict[int, str | None] = field(default_factory=dict)

    def copy(self) -> Source:
        return Source(dict(self.groups), dict(self.items), dict(self.notes))

    def keys(self, entity: str) -> set[str]:
        return {str(k) for k in (self.groups if entity == "grp" else self.items)}


def expected_destination(source: Source) -> dict[str, dict[str, dict[str, Any]]]:
    """entity → key text → destination row (the group as its legacy key text)."""
    return {
        "grp": {
            str(k): {"legacy_id": k, "name": name.strip()} for k, name in source.groups.items()
        },
        "item": {
            str(k): {
                "legacy_id": k,
                "grp_id": None if grp is None else str(grp),
                "label": label.strip().upper(),
                "amount": amount,
            }
            for k, (grp, label, amount) in source.items.items()
        },
    }


@dataclass
class Pair:
    legacy: sa.Engine
    target: sa.Engine
    legacy_url: str
    target_url: str
    source: Source = field(default_factory=Source)

    # -- legacy changes, written to MariaDB and to ``source`` --------------------------------

    def add_groups(self, groups: dict[int, str]) -> None:
        with self.legacy.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO grp (id, name) VALUES (:id, :name)"),
                [{"id": k, "name": v} for k, v in groups.items()],
            )
        self.source.groups.update(groups)

    def add_items(self, items: dict[int, ItemRow], note: str | None = None) -> None:
        for grp, _, _ in items.values():
            assert grp is None or grp in self.source.groups, f"group {grp} does not exist"
        with self.legacy.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO item VALUES (:id, :grp, :label, :amount, :note)"),
                [
                    {"id": k, "grp": g, "label": lb, "amount": a, "note": note}
                    for k, (g, lb, a) in items.items()
                ],
            )
        self.source.items.update(items)
        self.source.notes.update(dict.fromkeys(items, note))

    def update_items(self, items: dict[int, ItemRow]) -> None:
        with self.legacy.begin() as conn:
            for k, (grp, label, amount) in items.items():
                assert k in self.source.items and (grp is None or grp in self.source.groups)
                conn.execute(
                    sa.text("UPDATE item SET grp_id = :g, label = :l, amount = :a WHERE id = :id"),
                    {"id": k, "g": grp, "l": label, "a": amount},
                )
        self.source.items.update(items)

    def touch_items(self, ids: Iterable[int], note: str) -> None:
        """Change only the unmapped column: no modification for diffmig."""
        ids = list(ids)
        with self.legacy.begin() as conn:
            for k in ids:
                conn.execute(
                    sa.text("UPDATE item SET note = :n WHERE id = :id"), {"id": k, "n": note}
                )
        self.source.notes.update(dict.fromkeys(ids, note))

    def delete_items(self, ids: Iterable[int]) -> None:
        ids = sorted(ids)
        if ids:
            with self.legacy.begin() as conn:
                conn.execute(
                    sa.text("DELETE FROM item WHERE id IN :ids").bindparams(
                        sa.bindparam("ids", expanding=True)
                    ),
                    {"ids": ids},
                )
        for k in ids:
            del self.source.items[k]
            del self.source.notes[k]

    def rename_group(self, k: int, name: str) -> None:
        with self.legacy.begin() as conn:
            conn.execute(sa.text("UPDATE grp SET name = :n WHERE id = :id"), {"id": k, "n": name})
        self.source.groups[k] = name

    def delete_group(self, k: int) -> list[int]:
        """Delete a group and its items (the legacy application does both); their ids."""
        members = [i for i, (grp, _, _) in self.source.items.items() if grp == k]
        self.delete_items(members)
        with self.legacy.begin() as conn:
            conn.execute(sa.text("DELETE FROM grp WHERE id = :id"), {"id": k})
        del self.source.groups[k]
        return members

    # -- reading the destination back -----------------------------------------------------

    def destination(
        self, record_map: dict[str, dict[uuid.UUID, str]] | None = None
    ) -> tuple[dict[str, dict[str, dict]], dict[str, dict[str, uuid.UUID]]]:
        """Per entity: key text → row (the group as its key text) and key text → UUID.

        Keys come from the live record map (the control database's unless given); a row the
        map does not know shows up under ``?<uuid>`` and fails any comparison.
        """
        keys = live_record_map() if record_map is None else record_map
        rows: dict[str, dict[str, dict]] = {}
        uuids: dict[str, dict[str, uuid.UUID]] = {}
        with self.target.connect() as conn:
            for entity in ENTITIES:
                rows[entity], uuids[entity] = {}, {}
                columns = (
                    "id, legacy_id, name"
                    if entity == "grp"
                    else ("id, legacy_id, grp_id, label, amount")
                )
                for row in conn.execute(sa.text(f"SELECT {columns} FROM {entity}")).mappings():
                    record = dict(row)
                    record_uuid = record.pop("id")
                    key = keys[entity].get(record_uuid, f"?{record_uuid}")
                    if record.get("grp_id") is not None:
                        record["grp_id"] = keys["grp"].get(record["grp_id"], "?dangling")
                    assert key not in rows[entity], f"{entity} {key} twice in the destination"
                    rows[entity][key] = record
                    uuids[entity][key] = record_uuid
        return rows, uuids


def live_record_map() -> dict[str, dict[uuid.UUID, str]]:
    """entity → destination UUID → legacy key text, for the records not deleted."""
    out: dict[str, dict[uuid.UUID, str]] = {entity: {} for entity in ENTITIES}
    for entity, key, record_uuid in RecordMap.objects.filter(deleted_at__isnull=True).values_list(
        "entity_type", "legacy_key_text", "destination_uuid"
    ):
        out[entity][record_uuid] = key
    return out


@contextmanager
def groups_items_in(
    mysql_to_pg: tuple[str, str], *, item_table: str = "item", import_mapping: bool = True
) -> Iterator[Pair]:
    """The empty legacy tables in the scratch MariaDB, the destination tables in the scratch
    PostgreSQL database, and (unless told not to) the mapping imported."""
    legacy_url, target_url = mysql_to_pg
    legacy = sa.create_engine(
        sa.make_url(legacy_url).set(drivername="mysql+pymysql", query={"charset": "utf8mb4"})
    )
    # pre_ping: the restart tests restart the destination's server under this engine too.
    target = sa.create_engine(
        target_url.replace("postgresql://", "postgresql+psycopg://", 1), pool_pre_ping=True
    )
    with legacy.begin() as conn:
        for ddl in SOURCE_DDL:
            conn.exec_driver_sql(ddl)
    with target.begin() as conn:
        for ddl in DESTINATION_DDL:
            conn.exec_driver_sql(ddl)
    if import_mapping:
        import_groups_items_mapping(item_table=item_table)
    try:
        yield Pair(legacy=legacy, target=target, legacy_url=legacy_url, target_url=target_url)
    finally:
        legacy.dispose()
        target.dispose()


def import_groups_items_mapping(*, item_table: str = "item") -> None:
    """Import the mapping, the items read from ``item_table`` (a table or a view of ``item``)."""
    import_mapping_text(text=MAPPING.format(item_table=item_table))


def control_counts(control) -> dict[str, int]:
    """A MigrationControl's analysis counts, as the contract names them."""
    return {
        "new": control.new_count,
        "modified": control.modified_count,
        "deleted": control.deleted_count,
        "unchanged": control.unchanged_count,
        "retry": control.retry_count,
    }
