"""Property: after any sequence of source changes and runs, the destination is the mapping of
the source, UUIDs never change, and a run right after a run writes nothing.

One MariaDB table with a text key that may hold '/', '\\', spaces (trailing ones too), commas,
accents, emoji and case variants, or be empty (a binary, NO PAD collation keeps 'a', 'A'
and 'a ' apart), a mapped text column, a nullable mapped integer and an unmapped column; one
PostgreSQL destination table. The expected destination and the expected analysis counts are computed
here from the source rows the test wrote, not by the engine.

The databases are created once per test; each example starts from emptied tables (source,
destination and the control database's run tables).

``DIFFMIG_HYPOTHESIS_PROFILE=big`` runs 200 examples instead of the default 20.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrationsapp.engine.ids import destination_uuid, encode_key
from migrationsapp.models import MigrationControl, MigrationStatus, RecordEvent, RecordMap
from migrationsapp.models.choices import SessionStatus
from migrationsapp.services.mappings import import_mapping_text
from migrationsapp.services.runs import RunOptions, run_session

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PROFILES = {"default": 20, "big": 200}
EXAMPLES = PROFILES[os.environ.get("DIFFMIG_HYPOTHESIS_PROFILE", "default")]
ENTITY = "item"
BATCH = 7  # several batches per run, with a last partial one
MAX_ROWS = 200
# The control database's tables that one run writes; emptied between examples.
RUN_TABLES = (
    "differential_analysis_changes",
    "differential_analysis_results",
    "migration_checkpoints",
    "migration_control",
    "migration_execution_logs",
    "migration_mappings",
    "migration_quarantine",
    "migration_record_events",
    "migration_status_tracking",
)
MAPPING = """
version: 1
connections:
  legacy: {url: "${DIFFMIG_LEGACY_URL}", timezone: UTC}
  target: {url: "${DIFFMIG_TARGET_URL}"}
source: legacy
destination: target
entities:
  - name: item
    source_table: items
    source_key: [code]
    destination_table: item
    destination_key: id
    deletes: hard
    max_delete_share: 1.0
    fields:
      - {source: code, destination: code}
      - {source: label, destination: label, transform: "upper(trim(value))"}
      - {source: amount, destination: amount}
"""
SOURCE_DDL = """
CREATE TABLE items (
    code VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL PRIMARY KEY,
    label VARCHAR(60) NOT NULL,
    amount INT NULL,
    notes VARCHAR(60) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci
"""
DESTINATION_DDL = """
CREATE TABLE item (
    id UUID PRIMARY KEY,
    code TEXT NOT NULL,
    label TEXT NOT NULL,
    amount INTEGER
)
"""

Row = tuple[str, int | None]  # (label, amount): what the mapping reads besides the key


@dataclass
class Pair:
    legacy: sa.Engine
    target: sa.Engine


@pytest.fixture
def pair(mysql_to_pg) -> Iterator[Pair]:
    legacy_url, target_url = mysql_to_pg
    legacy = sa.create_engine(
        sa.make_url(legacy_url).set(drivername="mysql+pymysql", query={"charset": "utf8mb4"})
    )
    target = sa.create_engine(sa.make_url(target_url).set(drivername="postgresql+psycopg"))
    with legacy.begin() as conn:
        conn.exec_driver_sql(SOURCE_DDL)
    with target.begin() as conn:
        conn.exec_driver_sql(DESTINATION_DDL)
    import_mapping_text(text=MAPPING)
    yield Pair(legacy=legacy, target=target)
    legacy.dispose()
    target.dispose()


def _reset(pair: Pair) -> None:
    with pair.legacy.begin() as conn:
        conn.exec_driver_sql("DELETE FROM items")
    with pair.target.begin() as conn:
        conn.exec_driver_sql("DELETE FROM item")
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(RUN_TABLES)} CASCADE")


# --------------------------------------------------------------------------- the model


@dataclass
class Model:
    """The source as the test wrote it, and what the record map must hold after each run."""

    source: dict[str, Row] = field(default_factory=dict)
    notes: dict[str, str | None] = field(default_factory=dict)
    # By key value: what the map holds live (as last written), and every key ever migrated.
    migrated: dict[str, Row] = field(default_factory=dict)
    ever: dict[str, uuid.UUID] = field(default_factory=dict)

    def expected_counts(self) -> dict[str, int]:
        new = [k for k in self.source if k not in self.ever]
        modified = [
            k for k, row in self.source.items() if k in self.ever and self.migrated.get(k) != row
        ]
        deleted = [k for k in self.migrated if k not in self.source]
        return {
            "new": len(new),
            "modified": len(modified),
            "deleted": len(deleted),
            "unchanged": len(self.source) - len(new) - len(modified),
            "retry": 0,
        }

    def expected_destination(self) -> dict[str, dict]:
        return {
            encode_key([code]): {
                "code": code,
                "label": label.strip().upper(),
                "amount": amount,
            }
            for code, (label, amount) in self.source.items()
        }


# --------------------------------------------------------------------------- strategies

KEY_ALPHABET = "aAbB/\\ ,é🙂"
keys = st.text(alphabet=KEY_ALPHABET, min_size=0, max_size=6)
labels = st.text(alphabet="xyzXYZ é🙂", max_size=8)
amounts = st.none() | st.integers(min_value=-(2**31), max_value=2**31 - 1)
notes = st.none() | st.text(alphabet="nN ", max_size=4)


@st.composite
def scenarios(draw) -> tuple[list[str], list[tuple]]:
    """A pool of keys (case and trailing-space variants side by side) and operations on it."""
    pool = draw(st.lists(keys, min_size=1, max_size=12, unique=True))
    pool += [k.swapcase() for k in pool[:3] if k.swapcase() not in pool]
    pool += [k + " " for k in pool[:2] if k + " " not in pool]
    index = st.integers(min_value=0, max_value=len(pool) - 1)
    operation = st.one_of(
        st.tuples(st.just("insert"), index, labels, amounts, notes),
        st.tuples(st.just("bulk"), st.integers(min_value=1, max_value=60), labels),
        st.tuples(st.just("update"), index, labels, amounts),
        st.tuples(st.just("touch"), index, notes),
        st.tuples(st.just("delete"), index),
        st.tuples(st.just("run")),
    )
    return pool, draw(st.lists(operation, min_size=1, max_size=14))


# --------------------------------------------------------------------------- operations


def _apply(pair: Pair, model: Model, pool: list[str], op: tuple, counter: list[int]) -> bool:
    """Apply one source change to MariaDB and to the model; True when it was a `run`."""
    kind = op[0]
    with pair.legacy.begin() as conn:
        if kind == "insert":
            _, i, label, amount, note = op
            code = pool[i]
            if code in model.source or len(model.source) >= MAX_ROWS:
                return False
            conn.execute(
                sa.text("INSERT INTO items VALUES (:c, :l, :a, :n)"),
                {"c": code, "l": label, "a": amount, "n": note},
            )
            model.source[code], model.notes[code] = (label, amount), note
        elif kind == "bulk":
            _, n, label = op
            rows = []
            for _ in range(min(n, MAX_ROWS - len(model.source))):
                counter[0] += 1
                code = f"n/{counter[0]}, {'A' if counter[0] % 2 else 'a'}"
                rows.append({"c": code, "l": label, "a": counter[0], "n": None})
                model.source[code], model.notes[code] = (label, counter[0]), None
            if rows:
                conn.execute(sa.text("INSERT INTO items VALUES (:c, :l, :a, :n)"), rows)
        elif kind == "update":
            _, i, label, amount = op
            code = pool[i]
            if code in model.source:
                conn.execute(
                    sa.text("UPDATE items SET label = :l, amount = :a WHERE code = :c"),
                    {"c": code, "l": label, "a": amount},
                )
                model.source[code] = (label, amount)
        elif kind == "touch":
            _, i, note = op
            code = pool[i]
            if code in model.source:
                conn.execute(
                    sa.text("UPDATE items SET notes = :n WHERE code = :c"), {"c": code, "n": note}
                )
                model.notes[code] = note
        elif kind == "delete":
            code = pool[op[1]]
            if code in model.source:
                conn.execute(sa.text("DELETE FROM items WHERE code = :c"), {"c": code})
                del model.source[code]
    return kind == "run"


def _destination(pair: Pair) -> tuple[dict[str, dict], dict[str, uuid.UUID]]:
    """The destination by key text (through the record map), and each key's UUID."""
    keys = dict(
        RecordMap.objects.filter(entity_type=ENTITY).values_list(
            "destination_uuid", "legacy_key_text"
        )
    )
    rows: dict[str, dict] = {}
    uuids: dict[str, uuid.UUID] = {}
    with pair.target.connect() as conn:
        for row in conn.execute(sa.text("SELECT id, code, label, amount FROM item")).mappings():
            record = dict(row)
            record_uuid = record.pop("id")
            key = keys[record_uuid]
            assert key not in rows
            rows[key], uuids[key] = record, record_uuid
    return rows, uuids


def _run() -> tuple[uuid.UUID, MigrationControl]:
    session = run_session(options=RunOptions(batch_size=BATCH))
    assert session.overall_status == SessionStatus.COMPLETED
    control = MigrationControl.objects.get(session=session)
    return session.migration_session_id, control


def _counts(control: MigrationControl) -> dict[str, int]:
    return {
        "new": control.new_count,
        "modified": control.modified_count,
        "deleted": control.deleted_count,
        "unchanged": control.unchanged_count,
        "retry": control.retry_count,
    }


def _check_run(pair: Pair, model: Model) -> None:
    expected_counts = model.expected_counts()
    session_id, control = _run()

    assert _counts(control) == expected_counts
    changes = expected_counts["new"] + expected_counts["modified"] + expected_counts["deleted"]
    assert (control.processed_count, control.failed_count, control.skipped_count) == (
        changes,
        0,
        0,
    )
    assert RecordEvent.objects.filter(session_id=session_id).count() == changes
    rows, uuids = _destination(pair)
    assert rows == model.expected_destination()
    for code in model.source:
        key = encode_key([code])
        # A key keeps its UUID for ever, across deletes and re-inserts.
        assert uuids[key] == model.ever.setdefault(code, destination_uuid(ENTITY, key))
    live = RecordMap.objects.filter(entity_type=ENTITY, deleted_at__isnull=True)
    assert sorted(live.values_list("legacy_key_text", flat=True)) == sorted(rows)
    model.migrated = dict(model.source)

    # A run right after a run finds nothing to do and writes nothing.
    again_id, again = _run()
    assert _counts(again) == {
        "new": 0,
        "modified": 0,
        "deleted": 0,
        "unchanged": len(model.source),
        "retry": 0,
    }
    assert (again.processed_count, again.failed_count, again.skipped_count) == (0, 0, 0)
    assert RecordEvent.objects.filter(session_id=again_id).count() == 0
    assert MigrationStatus.objects.get(migration_session_id=again_id).total_records_processed == 0
    assert _destination(pair) == (rows, uuids)


# --------------------------------------------------------------------------- the property


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_any_sequence_of_changes_and_runs_keeps_the_destination_equal_to_the_mapped_source(
    pair, scenario
):
    pool, operations = scenario
    _reset(pair)
    model = Model()
    counter = [0]
    for op in [*operations, ("run",)]:
        if _apply(pair, model, pool, op, counter):
            _check_run(pair, model)
