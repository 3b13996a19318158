"""Reading ahead: a helper reads the sources of the entities the executor has not reached.

The clinic (MariaDB legacy → PostgreSQL): the entities' hash analyses read ahead (in this
process, or by the helper process of ``DIFFMIG_LOCAL_PROCESSES``), then the session
executed: the destination, record map, quarantine and counters must be exactly an
uninterrupted one-process run's (tests.integration.test_jobs), and the executor must resume
the reads it finds, not read them again. The tests read every entity with a change set
(``DIFFMIG_KEY_RANGE_BASELINE`` off), but one: an entity whose first baseline reads by key
range (services.key_range_baseline) has no analysis read to do ahead.
"""

from __future__ import annotations

import time
from dataclasses import replace

import psycopg
import pytest

from migrationsapp.engine.diff import SliceCheckpoint
from migrationsapp.models import DifferentialAnalysisResult, MigrationControl
from migrationsapp.models.analysis import AnalysisStatus
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.services.runs import (
    RunOptions,
    launch_session,
    local_processes,
    read_ahead,
    start_run,
)
from migrationsapp.services.runs.context import session_context
from migrationsapp.services.runs.execute import execute_session
from migrationsapp.services.source_read_locks import _lock_key
from migrationsapp.services.state import transition_session
from tests.integration.test_jobs import ENTITIES, assert_migrated, clinic  # noqa: F401 (fixture)
from tests.support.stages import no_stages_left  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("no_stages_left"),
]


@pytest.fixture(autouse=True)
def change_sets(settings, monkeypatch):
    """Every entity's analysis reads its source into a stage, in helpers too."""
    settings.DIFFMIG_KEY_RANGE_BASELINE = False
    monkeypatch.setenv("DIFFMIG_KEY_RANGE_BASELINE", "0")


def _running_session():
    session = launch_session(user="test")
    transition_session(
        session_id=session.migration_session_id,
        to=SessionStatus.RUNNING,
        expected=SessionStatus.PENDING,
    )
    return session.migration_session_id


def _reads(session_id) -> dict[str, DifferentialAnalysisResult]:
    return {
        a.entity_type: a for a in DifferentialAnalysisResult.objects.filter(session_id=session_id)
    }


def test_the_executor_resumes_every_read_done_ahead_and_writes_exactly(clinic):  # noqa: F811
    session_id = _running_session()
    with session_context(session_id=session_id) as ctx:
        # The last first: the executor starts with the first.
        assert read_ahead.read_ahead(ctx) == list(reversed(ENTITIES))
    ahead = _reads(session_id)
    for entity, analysis in ahead.items():
        read = SliceCheckpoint.from_dict(analysis.slice_checkpoint)
        assert (entity, analysis.status, read.done) == (entity, AnalysisStatus.READING, True)
        assert read.rows_staged > 0
    execute_session(session_id=session_id)
    assert_migrated(clinic, session_id)
    # Each entity's analysis is the one read ahead, classified: no second read of a source.
    after = _reads(session_id)
    assert {e: a.pk for e, a in after.items()} == {e: a.pk for e, a in ahead.items()}
    assert {a.status for a in after.values()} == {AnalysisStatus.COMPLETE}
    for entity, analysis in after.items():
        assert analysis.slice_checkpoint == ahead[entity].slice_checkpoint, entity


def test_entities_read_by_key_range_are_not_read_ahead(clinic, settings):  # noqa: F811
    settings.DIFFMIG_KEY_RANGE_BASELINE = True
    session_id = _running_session()
    with session_context(session_id=session_id) as ctx:
        # Offices and doctors have integer primary keys, the others text keys.
        assert read_ahead.read_ahead(ctx) == ["appointment", "patient"]
    execute_session(session_id=session_id)
    assert_migrated(clinic, session_id)
    read = {e: (a.analysis_metadata or {}).get("read", "") for e, a in _reads(session_id).items()}
    assert read == {"office": "key_range", "doctor": "key_range", "patient": "", "appointment": ""}


def test_read_ahead_leaves_alone_what_another_process_reads_or_the_executor_started(
    clinic,  # noqa: F811
):
    session_id = _running_session()
    MigrationControl.objects.filter(session_id=session_id, entity_type="office").update(
        state=EntityState.RUNNING  # the executor is on the first entity
    )
    # Another process reads the patients: it holds their lock on a connection of its own.
    with psycopg.connect(local_processes.control_url(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [_lock_key(session_id, "patient")])
        with session_context(session_id=session_id) as ctx:
            assert read_ahead.read_ahead(ctx) == ["appointment", "doctor"]
    assert set(_reads(session_id)) == {"doctor", "appointment"}


def test_read_ahead_stops_at_the_last_entity_the_executor_has_started(clinic):  # noqa: F811
    session_id = _running_session()
    MigrationControl.objects.filter(session_id=session_id, entity_type="doctor").update(
        state=EntityState.RUNNING
    )
    with session_context(session_id=session_id) as ctx:
        assert read_ahead.read_ahead(ctx) == ["appointment", "patient"]
    assert set(_reads(session_id)) == {"appointment", "patient"}


def test_read_ahead_stops_when_the_session_stops_running(clinic):  # noqa: F811
    session_id = _running_session()
    transition_session(
        session_id=session_id, to=SessionStatus.PAUSED, expected=SessionStatus.RUNNING
    )
    with session_context(session_id=session_id) as ctx:
        assert read_ahead.read_ahead(ctx) == []
    assert _reads(session_id) == {}


def test_a_run_with_its_read_ahead_helper_writes_exactly_what_one_process_writes(
    clinic,  # noqa: F811
    settings,
    monkeypatch,
):
    settings.DIFFMIG_LOCAL_PROCESSES = 2
    codes: list[int | None] = []
    stop = read_ahead.stop
    monkeypatch.setattr(read_ahead, "stop", lambda helper: codes.append(stop(helper)))
    started = start_run(options=RunOptions(batch_size=10), user="test")
    assert_migrated(clinic, started.session.migration_session_id)
    # The helper was started; the executor may have ended it before it read anything (the
    # clinic is small): the outcome is the same either way.
    assert len(codes) == 1


def test_the_helper_process_reads_every_entity_ahead_and_ends(clinic, settings):  # noqa: F811
    settings.DIFFMIG_LOCAL_PROCESSES = 2
    session_id = _running_session()
    with session_context(session_id=session_id) as ctx:
        helper = read_ahead.start(ctx)
    assert helper is not None
    assert helper.wait(timeout=120) == 0
    reads = _reads(session_id)
    assert set(reads) == set(ENTITIES)
    assert all(SliceCheckpoint.from_dict(a.slice_checkpoint).done for a in reads.values())


def test_a_helper_killed_while_it_reads_leaves_what_it_read_to_the_executor(
    clinic,  # noqa: F811
    settings,
    monkeypatch,
):
    """The helper dies (SIGKILL) in the middle of its reads, slices of a few rows each: the
    executor resumes its reads after their last committed slice and writes exactly."""
    settings.DIFFMIG_LOCAL_PROCESSES = 2
    monkeypatch.setenv("DIFFMIG_ANALYSIS_SLICE_ROWS", "7")
    settings.DIFFMIG_ANALYSIS_SLICE_ROWS = 7
    session_id = _running_session()
    with session_context(session_id=session_id) as ctx:
        helper = read_ahead.start(ctx)
    assert helper is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and helper.poll() is None:
        slices = [
            SliceCheckpoint.from_dict(a.slice_checkpoint).slices
            for a in _reads(session_id).values()
        ]
        if sum(slices) >= 3:
            break
        time.sleep(0.05)
    helper.kill()
    helper.wait()
    read_before = {
        e: SliceCheckpoint.from_dict(a.slice_checkpoint) for e, a in _reads(session_id).items()
    }
    killed = {e: a.pk for e, a in _reads(session_id).items()}
    assert sum(c.slices for c in read_before.values()) >= 3  # it had read some slices
    execute_session(session_id=session_id)
    assert_migrated(clinic, session_id)
    after = _reads(session_id)
    for entity, before in read_before.items():
        # Resumed, not read afresh: the same analysis, its slices read before the kill kept.
        assert after[entity].pk == killed[entity], entity
        assert SliceCheckpoint.from_dict(after[entity].slice_checkpoint).slices >= before.slices


def test_an_entity_the_active_mapping_no_longer_has_is_left_to_the_executor(
    clinic,  # noqa: F811
):
    """The mapping changed between the launch and the read (the executor reports it)."""
    session_id = _running_session()
    with session_context(session_id=session_id) as ctx:
        mapping = ctx.active.mapping
        kept = [e for e in mapping.entities if e.name != "appointment"]
        ctx.active = replace(ctx.active, mapping=replace(mapping, entities=kept))
        assert read_ahead.read_ahead(ctx) == ["patient", "doctor", "office"]
    assert set(_reads(session_id)) == {"patient", "doctor", "office"}
