"""A hash analysis read in key slices gives the change set of one read, and resumes.

The source (MariaDB with a case- and accent-insensitive, pad-space collation; PostgreSQL;
SQLite) holds a two-column key with keys its collation holds equal ('a', 'A', 'a '; two
emoji), NULL keys, and a record map and quarantine that make every kind of change. The
change set of an analysis cut into slices of 1, 2, 5 or 1,000 rows must equal the one a
single stream into the temporary stage writes (``ControlChangeSetStore``), row for row, the
upserts before the deletes. An analysis killed after slice k (a fault hook raising, or its
process killed with SIGKILL) resumes at slice k + 1 of the same analysis and gives the same
change set; a complete analysis never resumes; a stage that lost rows (a crash recovery
empties UNLOGGED tables) makes it start over; a key on two rows is refused as before; stages
that nothing will resume are dropped.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from django.db import connection, transaction
from django.utils import timezone

from migrationsapp.engine.connectors import Database
from migrationsapp.engine.errors import MappingError
from migrationsapp.engine.ids import key_forms
from migrationsapp.models import AnalysisChange, DifferentialAnalysisResult
from migrationsapp.models.analysis import AnalysisStatus
from migrationsapp.models.choices import SessionStatus
from migrationsapp.services.analysis import (
    EntityAnalysis,
    analyze_into_result,
    read_entity_source,
)
from migrationsapp.services.analysis_slices import drop_stale_stages
from migrationsapp.services.analysis_stage import stage_table, stage_tables
from migrationsapp.services.changeset import ControlChangeSetStore
from migrationsapp.services.databases import open_named
from migrationsapp.services.mappings import import_mapping_text, load_active_mapping
from tests.databases import (
    create_mysql_database,
    create_postgres_database,
    drop_mysql_database,
    drop_postgres_database,
    engine_for,
)
from tests.factories import MigrationStatusFactory, QuarantinedRecordFactory, RecordMapFactory
from tests.support.scratch_pair import CONNECTIONS
from tests.support.stages import no_stages_left  # noqa: F401 (fixture)
from tests.support.workers import ROOT, control_database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_stages_left")]

MAPPING = (
    CONNECTIONS
    + """\
  - name: item
    source_table: items
    source_key: [region, code]
    destination_table: item
    destination_key: id
    fields:
      - {source: region, destination: region}
      - {source: code, destination: code}
      - {source: label, destination: label}
"""
)

ITEMS = {
    "mysql": "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, region VARCHAR(10) NULL, "
    "code VARCHAR(20) NULL, label VARCHAR(40) NULL, KEY items_key (region, code)) "
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci",
    "postgresql": "CREATE TABLE items (id SERIAL PRIMARY KEY, region VARCHAR(10), "
    "code VARCHAR(20), label VARCHAR(40))",
    "sqlite": "CREATE TABLE items (id INTEGER PRIMARY KEY, region TEXT, code TEXT, label TEXT)",
}
ITEM = "CREATE TABLE item (id uuid PRIMARY KEY, region text, code text, label text)"

ROWS = [
    *[((("EU", "eu", "US", "Asia")[n % 4]), f"C{n:02d}", f"label {n}") for n in range(40)],
    # Distinct records that a case-insensitive, pad-space collation holds equal.
    ("EU", "a", "lower"),
    ("EU", "A", "upper"),
    ("EU", "a ", "trailing space"),
    ("EU", "é", "accent"),
    ("EU", "É", "accent upper"),
    ("EU", "🙂", "smile"),
    ("EU", "🚀", "rocket"),
    # NULL keys: reported, never staged.
    (None, "N1", "no region"),
    ("EU", None, "no code"),
    (None, None, "no key"),
]
WHOLE_KEYS = len(ROWS) - 3


@dataclass
class Source:
    database: Database
    engine: sa.Engine

    def execute(self, sql: str, **params) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql), params)


def _fill(legacy_url: str, target_url: str, dialect: str) -> Source:
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    with legacy.begin() as conn:
        conn.exec_driver_sql(ITEMS[dialect])
        if dialect != "mysql":
            conn.exec_driver_sql("CREATE INDEX items_key ON items (region, code)")
        conn.execute(
            sa.text("INSERT INTO items (region, code, label) VALUES (:r, :c, :l)"),
            [{"r": r, "c": c, "l": label} for r, c, label in ROWS],
        )
    with target.begin() as conn:
        conn.exec_driver_sql(ITEM)
    target.dispose()
    import_mapping_text(text=MAPPING)
    return Source(database=open_named(load_active_mapping().mapping.source), engine=legacy)


@pytest.fixture(params=["mysql", "postgresql"])
def source(request, monkeypatch) -> Iterator[Source]:
    """The legacy `items` on MariaDB or PostgreSQL; the destination on PostgreSQL."""
    target_url = create_postgres_database("target")
    # On PostgreSQL, `items` and `item` side by side in one database.
    legacy_url = create_mysql_database("legacy") if request.param == "mysql" else target_url
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", legacy_url)
    monkeypatch.setenv("DIFFMIG_TARGET_URL", target_url)
    made = _fill(legacy_url, target_url, request.param)
    yield made
    made.database.close()
    made.engine.dispose()
    if request.param == "mysql":
        drop_mysql_database(legacy_url)
    drop_postgres_database(target_url)


@pytest.fixture
def sqlite_source(tmp_path, settings, monkeypatch) -> Iterator[Source]:
    settings.DIFFMIG_SQLITE_ROOT = tmp_path
    legacy_url = f"sqlite:///{tmp_path / 'legacy.sqlite3'}"
    target_url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    monkeypatch.setenv("DIFFMIG_LEGACY_URL", legacy_url)
    monkeypatch.setenv("DIFFMIG_TARGET_URL", target_url)
    made = _fill(legacy_url, target_url, "sqlite")
    yield made
    made.database.close()
    made.engine.dispose()


def analyze(source: Source, *, slice_rows: int, session_id=None, **options) -> EntityAnalysis:
    active = load_active_mapping()
    return analyze_into_result(
        source=source.database,
        entity=active.entity("item"),
        mapping_version=active.versions["item"],
        session_id=session_id,
        slice_rows=slice_rows,
        **options,
    )


def change_set(result: DifferentialAnalysisResult) -> list[tuple]:
    """The changes, upserts first then deletes (each in id order, as the runner takes them),
    every kind's in key order: the upserts' ids follow the order the source returned their
    rows in, which a slice's range read need not share with a whole-table read."""
    rows = AnalysisChange.objects.filter(analysis=result).order_by("id")
    changes = list(rows.values_list("kind", "legacy_key", "legacy_key_text", "content_hash"))
    kinds = [kind for kind, *_ in changes]
    upserts = [c for c in changes if c[0] != "deleted"]
    deletes = [c for c in changes if c[0] == "deleted"]
    assert kinds == [k for k in kinds if k != "deleted"] + ["deleted"] * len(deletes)
    return sorted(upserts, key=lambda c: c[2]) + deletes


def one_stream(source: Source) -> tuple[list[tuple], dict[str, int]]:
    """The change set and counts of the whole source streamed into the temporary stage."""
    active = load_active_mapping()
    entity = active.entity("item")
    result = DifferentialAnalysisResult.objects.create(
        entity_type="item",
        mapping_version=active.versions["item"],
        analysis_timestamp=timezone.now(),
    )
    with transaction.atomic():
        store = ControlChangeSetStore(analysis_id=result.id, entity="item")
        for batch in source.database.stream_key_hashes(
            "items", entity.source_key, ("region", "code", "label"), batch_size=7
        ):
            store.add_source([(*key_forms(k), h) for k, h in batch if None not in k])
        counts = store.classify(baseline=False, mapping_version=active.versions["item"])
    changes = change_set(result)
    result.delete()
    return changes, {**counts.as_dict(), "source": counts.source_count}


def map_most_records(source: Source) -> None:
    """A record map and quarantine under which the source has every kind of change."""
    changes, _ = one_stream(source)
    version = load_active_mapping().versions["item"]
    for i, (_kind, key, text, content_hash) in enumerate(changes):
        if i % 7 == 0:
            if i % 2:
                QuarantinedRecordFactory(  # failed last time, unchanged since: retry
                    entity_type="item",
                    legacy_key=key,
                    legacy_key_text=text,
                    content_hash=content_hash,
                    mapping_version=version,
                )
            continue  # new
        RecordMapFactory(
            entity_type="item",
            legacy_key=key,
            legacy_key_text=text,
            content_hash=content_hash if i % 5 else "0" * 32,  # modified every fifth
            mapping_version=version,
        )
    for code in ("gone 1", "gone 2", "a  "):  # deleted from the source
        RecordMapFactory(entity_type="item", legacy_key=["EU", code], mapping_version=version)


def counts_of(analysis: EntityAnalysis) -> dict[str, int]:
    return {**analysis.counts.as_dict(), "source": analysis.counts.source_count}


def assert_same_as_one_stream(source: Source, analysis: EntityAnalysis) -> None:
    expected_changes, expected_counts = one_stream(source)
    assert change_set(analysis.result) == expected_changes
    assert counts_of(analysis) == expected_counts
    assert analysis.counts.null_keys == 3
    assert analysis.result.status == AnalysisStatus.COMPLETE
    assert analysis.result.rows_seen == len(ROWS)
    assert stage_table(analysis.result.pk) not in stage_tables()


@pytest.mark.services
@pytest.mark.parametrize("slice_rows", [1, 2, 5, 1000])
def test_an_analysis_in_slices_gives_the_change_set_of_one_read(source, slice_rows):
    map_most_records(source)
    analysis = analyze(source, slice_rows=slice_rows)

    assert_same_as_one_stream(source, analysis)
    kinds = {kind for kind, *_ in change_set(analysis.result)}
    assert kinds == {"new", "modified", "deleted", "retry"}
    slices = analysis.result.slices_done
    assert slices == 1 if slice_rows == 1000 else slices >= WHOLE_KEYS // (slice_rows + 2)


@pytest.mark.embedded
@pytest.mark.parametrize("slice_rows", [1, 3, 0])
def test_an_analysis_in_slices_of_a_sqlite_source_gives_the_change_set_of_one_read(
    sqlite_source, slice_rows
):
    map_most_records(sqlite_source)
    analysis = analyze(sqlite_source, slice_rows=slice_rows)

    assert_same_as_one_stream(sqlite_source, analysis)
    # SQLite compares text by its bytes: every key is a slice boundary of its own.
    assert analysis.result.slices_done == (1 if slice_rows == 0 else -(-WHOLE_KEYS // slice_rows))


class Crash(Exception):
    pass


def crash_after(slices: int):
    committed: list[str] = []

    def fault(point: str) -> None:
        committed.append(point)
        if len(committed) == slices:
            raise Crash(point)

    return fault


def _killed_then_resumed(source: Source) -> None:
    map_most_records(source)
    session = MigrationStatusFactory(overall_status=SessionStatus.RUNNING)
    session_id = session.migration_session_id
    with pytest.raises(Crash):
        analyze(source, slice_rows=4, session_id=session_id, fault=crash_after(3))
    killed = DifferentialAnalysisResult.objects.get(session=session)
    assert (killed.status, killed.slices_done) == (AnalysisStatus.READING, 3)
    assert stage_tables() == [stage_table(killed.pk)]

    resumed_slices: list[str] = []
    progress: list[int] = []
    analysis = analyze(
        source,
        slice_rows=4,
        session_id=session_id,
        fault=resumed_slices.append,
        progress=progress.append,
    )
    assert analysis.result.pk == killed.pk
    assert analysis.result.slices_done == 3 + len(resumed_slices)
    assert progress[0] > killed.rows_seen  # read on from slice 4, not from the first row
    assert_same_as_one_stream(source, analysis)


@pytest.mark.services
def test_an_analysis_killed_after_slice_k_resumes_at_slice_k_plus_1(source):
    _killed_then_resumed(source)


@pytest.mark.embedded
def test_an_analysis_of_a_sqlite_source_killed_after_slice_k_resumes(sqlite_source):
    _killed_then_resumed(sqlite_source)


@pytest.mark.embedded
def test_a_read_committed_before_the_callers_transaction_is_classified_in_it(
    sqlite_source, settings
):
    """A run reads the source first, each slice committed (``read_entity_source``), then
    classifies it in the transaction that points the entity at the analysis."""
    settings.DIFFMIG_ANALYSIS_SLICE_ROWS = 4
    map_most_records(sqlite_source)
    active = load_active_mapping()
    session_id = MigrationStatusFactory(overall_status=SessionStatus.RUNNING).migration_session_id
    read = {
        "source": sqlite_source.database,
        "entity": active.entity("item"),
        "mapping_version": active.versions["item"],
        "session_id": session_id,
    }
    with pytest.raises(Crash):
        read_entity_source(**read, fault=crash_after(2))
    read_entity_source(**read)
    staged = DifferentialAnalysisResult.objects.get(session_id=session_id)
    assert (staged.status, staged.rows_seen) == (AnalysisStatus.READING, len(ROWS))

    with transaction.atomic():
        analysis = analyze(sqlite_source, slice_rows=0, session_id=session_id)

    assert analysis.result.pk == staged.pk
    assert_same_as_one_stream(sqlite_source, analysis)


@pytest.mark.embedded
def test_a_complete_analysis_never_resumes(sqlite_source):
    session_id = MigrationStatusFactory().migration_session_id
    first = analyze(sqlite_source, slice_rows=5, session_id=session_id)
    read_again: list[str] = []
    second = analyze(sqlite_source, slice_rows=5, session_id=session_id, fault=read_again.append)

    assert second.result.pk != first.result.pk
    assert len(read_again) == second.result.slices_done == first.result.slices_done
    assert change_set(second.result) == change_set(first.result)


@pytest.mark.embedded
def test_a_stage_that_lost_rows_starts_the_analysis_over(sqlite_source):
    map_most_records(sqlite_source)
    session_id = MigrationStatusFactory().migration_session_id
    with pytest.raises(Crash):
        analyze(sqlite_source, slice_rows=4, session_id=session_id, fault=crash_after(2))
    killed = DifferentialAnalysisResult.objects.get(session_id=session_id)
    with connection.cursor() as cursor:  # what a crash recovery does to an UNLOGGED table
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(stage_table(killed.pk))}")

    read: list[str] = []
    analysis = analyze(sqlite_source, slice_rows=4, session_id=session_id, fault=read.append)

    assert analysis.result.pk != killed.pk
    assert not DifferentialAnalysisResult.objects.filter(pk=killed.pk).exists()
    assert len(read) == analysis.result.slices_done
    assert_same_as_one_stream(sqlite_source, analysis)


@pytest.mark.services
def test_a_key_on_two_rows_is_refused_across_slices(source):
    source.execute("INSERT INTO items (region, code, label) VALUES ('EU', 'C04', 'twice')")
    session_id = MigrationStatusFactory().migration_session_id
    with pytest.raises(MappingError) as refused:
        analyze(source, slice_rows=1, session_id=session_id)

    assert str(refused.value.problems[0].reason) == (
        "source_key ['region', 'code'] is not unique in table 'items' (key 'EU/C04' is on "
        "more than one row); choose columns that identify one row"
    )
    # Refused: nothing left to resume (the source may be fixed before the next attempt).
    assert not DifferentialAnalysisResult.objects.filter(session_id=session_id).exists()
    assert stage_tables() == []


@pytest.mark.embedded
def test_stages_that_nothing_will_resume_are_dropped(sqlite_source):
    def killed(status: str | None) -> DifferentialAnalysisResult:
        session_id = (
            MigrationStatusFactory(overall_status=status).migration_session_id if status else None
        )
        with pytest.raises(Crash):
            analyze(sqlite_source, slice_rows=4, session_id=session_id, fault=crash_after(1))
        return DifferentialAnalysisResult.objects.filter(status=AnalysisStatus.READING).latest(
            "created_at"
        )

    completed, cancelled = killed(SessionStatus.COMPLETED), killed(SessionStatus.CANCELLED)
    paused, failed = killed(SessionStatus.PAUSED), killed(SessionStatus.FAILED)
    without_session = killed(None)
    deleted = killed(SessionStatus.RUNNING)
    DifferentialAnalysisResult.objects.filter(pk=deleted.pk).delete()  # e.g. by retention

    assert drop_stale_stages() == 3
    assert set(stage_tables()) == {stage_table(a.pk) for a in (paused, failed, without_session)}
    assert drop_stale_stages(now=timezone.now() + dt.timedelta(days=2)) == 1
    assert set(stage_tables()) == {stage_table(paused.pk), stage_table(failed.pk)}
    assert set(DifferentialAnalysisResult.objects.values_list("pk", flat=True)) == {
        paused.pk,
        failed.pk,
    }
    assert not DifferentialAnalysisResult.objects.filter(pk__in=[completed.pk, cancelled.pk])


KILLED_ANALYSIS = """
import os, signal, sys, uuid
import django

django.setup()
from migrationsapp.services.analysis import analyze_into_result
from migrationsapp.services.databases import open_named
from migrationsapp.services.mappings import load_active_mapping

active = load_active_mapping()
committed = []

def fault(point):
    committed.append(point)
    if len(committed) == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)

analyze_into_result(
    source=open_named(active.mapping.source),
    entity=active.entity("item"),
    mapping_version=active.versions["item"],
    session_id=uuid.UUID(sys.argv[1]),
    slice_rows=int(sys.argv[3]),
    fault=fault,
)
"""


@pytest.mark.services
@pytest.mark.parametrize("source", ["mysql"], indirect=True)
def test_an_analysis_whose_process_was_killed_resumes_after_its_last_slice(source):
    if connection.vendor != "postgresql":
        pytest.skip("the analysing process reaches the control database by DATABASE_URL")
    map_most_records(source)
    session_id = MigrationStatusFactory(overall_status=SessionStatus.RUNNING).migration_session_id
    env = {**os.environ, "DATABASE_URL": control_database_url(), "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_SETTINGS_MODULE", "diffmig.settings")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_ANALYSIS, str(session_id), "5", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    reading = DifferentialAnalysisResult.objects.get(session_id=session_id)
    assert (reading.status, reading.slices_done) == (AnalysisStatus.READING, 5)

    resumed: list[str] = []
    analysis = analyze(source, slice_rows=3, session_id=session_id, fault=resumed.append)

    assert analysis.result.pk == reading.pk
    assert analysis.result.slices_done == 5 + len(resumed)
    assert_same_as_one_stream(source, analysis)
