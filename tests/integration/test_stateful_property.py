"""Stateful property: random sequences of legacy changes, runs, paused runs and crashed runs
against the real databases keep the destination equal to the mapping of the source, and a
record's UUID never changes once it has been migrated.

The source is the two-entity legacy database of tests.support.groups_items (groups, and items
that reference a group), in a scratch MariaDB; the destination is a scratch PostgreSQL
database. Hypothesis drives a RuleBasedStateMachine: rules change the legacy rows (insert,
update, a change to an unmapped column only, delete, a group deleted with its items, a
deleted item inserted again) and run sessions in three ways: straight through; paused after
some batches, then resumed; crashed (a BaseException, as a killed process) at one of the two
points of the two-commit protocol, then taken over by a resume. After every completed run
the invariant is checked against what ``expected_destination`` computes from the rows the
test wrote, never against the engine's own view.

Examples: ``DIFFMIG_HYPOTHESIS_PROFILE=big`` runs 200 (up to 12 steps each); the default
runs a few short ones.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import override_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from migrationsapp.engine.ids import destination_uuid
from migrationsapp.models import MigrationControl, MigrationStatus, RecordEvent
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.services.runs import (
    RunOptions,
    execute_session,
    launch_session,
    prepare_resume,
    request_pause,
)
from tests.integration.test_engine_faults import AFTER_CONTROL, AFTER_DESTINATION, Crash, _crash_at
from tests.integration.test_engine_property import RUN_TABLES
from tests.support.groups_items import ENTITIES, Pair, Source, expected_destination, groups_items_in
from tests.support.reliability import record

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PROFILE = os.environ.get("DIFFMIG_HYPOTHESIS_PROFILE", "default")
EXAMPLES = {"default": 5, "big": 200}[PROFILE]
STEPS = {"default": 6, "big": 12}[PROFILE]
BATCH = 4  # a handful of batches per run, so pauses and crashes land inside one
MAX_ITEMS = 40

labels = st.text(alphabet="abcXYZ é", min_size=1, max_size=6)
amounts = st.none() | st.integers(min_value=-1000, max_value=1000)
picks = st.integers(min_value=0, max_value=10**6)


def _pick(keys, index: int):
    ordered = sorted(keys)
    return ordered[index % len(ordered)]


class LegacyAndRuns(RuleBasedStateMachine):
    """The legacy database as the test wrote it, and the runs; ``pair`` is set by the test."""

    pair: Pair
    tally: Counter

    def __init__(self) -> None:
        super().__init__()
        _reset(self.pair)
        self.next_id = 1
        self.gone: dict[int, tuple] = {}  # deleted items, to insert again (same key)
        self.ever: dict[tuple[str, str], uuid.UUID] = {}  # every UUID first seen

    @property
    def source(self) -> Source:
        return self.pair.source

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _group(self, index: int | None) -> int | None:
        return None if index is None or not self.source.groups else _pick(self.source.groups, index)

    # -- legacy changes ------------------------------------------------------------------

    @initialize(groups=st.integers(min_value=1, max_value=3), items=st.integers(5, 20))
    def legacy_data(self, groups, items):
        """Enough rows that a first run has several batches for a pause or a crash to hit."""
        ids = [self._new_id() for _ in range(groups)]
        self.pair.add_groups({g: f"group {g}" for g in ids})
        self.pair.add_items(
            {
                self._new_id(): (ids[n % groups] if n % 4 else None, f"item {n}", n)
                for n in range(items)
            }
        )

    @rule(name=labels)
    def add_group(self, name):
        self.pair.add_groups({self._new_id(): f" {name} "})

    @precondition(lambda self: self.source.groups)
    @rule(index=picks, name=labels)
    def rename_group(self, index, name):
        self.pair.rename_group(_pick(self.source.groups, index), name)

    @precondition(lambda self: self.source.groups)
    @rule(index=picks)
    def delete_group(self, index):
        group = _pick(self.source.groups, index)
        members = {
            i: self.source.items[i] for i, row in self.source.items.items() if row[0] == group
        }
        self.pair.delete_group(group)
        self.gone.update({i: (None, *row[1:]) for i, row in members.items()})

    @precondition(lambda self: len(self.source.items) < MAX_ITEMS)
    @rule(count=st.integers(min_value=1, max_value=9), group=st.none() | picks, label=labels)
    def add_items(self, count, group, label):
        grp = self._group(group)
        self.pair.add_items({self._new_id(): (grp, f"{label} {n}", n) for n in range(count)})

    @precondition(lambda self: self.source.items)
    @rule(index=picks, group=st.none() | picks, label=labels, amount=amounts)
    def update_item(self, index, group, label, amount):
        self.pair.update_items(
            {_pick(self.source.items, index): (self._group(group), label, amount)}
        )

    @precondition(lambda self: self.source.items)
    @rule(index=picks, note=labels)
    def touch_item(self, index, note):
        self.pair.touch_items([_pick(self.source.items, index)], note)

    @precondition(lambda self: self.source.items)
    @rule(index=picks, count=st.integers(min_value=1, max_value=5))
    def delete_items(self, index, count):
        ordered = sorted(self.source.items)
        start = index % len(ordered)
        doomed = ordered[start : start + count]
        self.gone.update({i: self.source.items[i] for i in doomed})
        self.pair.delete_items(doomed)

    @precondition(lambda self: self.gone)
    @rule(index=picks)
    def insert_again(self, index):
        key = _pick(self.gone, index)
        grp, label, amount = self.gone.pop(key)
        self.pair.add_items({key: (grp if grp in self.source.groups else None, label, amount)})

    # -- runs ----------------------------------------------------------------------------

    @rule()
    def run(self):
        session_id = _launch()
        self._completed(execute_session(session_id=session_id), session_id)
        self.tally["straight"] += 1

    @rule(after=st.integers(min_value=1, max_value=4))
    def run_paused_then_resumed(self, after):
        session_id = _launch()
        seen = Counter()

        def pause_after(point: str) -> None:
            seen[point] += 1
            if point == AFTER_CONTROL and seen[point] == after:
                request_pause(session_id=session_id, user="test")

        session = execute_session(session_id=session_id, fault=pause_after)
        if session.overall_status == SessionStatus.PAUSED:
            self.tally["paused"] += 1
            prepare_resume(session_id=session_id, user="test")
            session = execute_session(session_id=session_id)
        self._completed(session, session_id)

    @rule(point=st.sampled_from([AFTER_DESTINATION, AFTER_CONTROL]), batch=st.integers(1, 5))
    def run_crashed_then_resumed(self, point, batch):
        session_id = _launch()
        try:
            session = execute_session(session_id=session_id, fault=_crash_at(point, batch))
        except Crash:
            self.tally["crashed"] += 1
            assert _status(session_id) == SessionStatus.RUNNING
            with override_settings(DIFFMIG_LEASE_TIMEOUT=0):  # the dead process's lease
                prepare_resume(session_id=session_id, user="test")
            session = execute_session(session_id=session_id)
        self._completed(session, session_id)

    # -- the invariant -------------------------------------------------------------------

    def _completed(self, session: MigrationStatus, session_id: uuid.UUID) -> None:
        assert session.overall_status == SessionStatus.COMPLETED, session.error_summary
        expected = expected_destination(self.source)
        rows, uuids = self.pair.destination()
        assert rows == expected
        for entity in ENTITIES:
            for key, record_uuid in uuids[entity].items():
                # Stable for ever: the UUID a key got the first time, across deletes too.
                first = self.ever.setdefault((entity, key), destination_uuid(entity, key))
                assert record_uuid == first, (entity, key)
        events = Counter(
            RecordEvent.objects.filter(session_id=session_id).values_list(
                "entity_type", "legacy_key_text"
            )
        )
        assert [key for key, n in events.items() if n > 1] == []  # each record once per run
        for control in MigrationControl.objects.filter(session_id=session_id):
            changes = control.new_count + control.modified_count + control.deleted_count
            assert (control.state, control.failed_count, control.skipped_count) == (
                EntityState.COMPLETED,
                0,
                0,
            )
            assert control.processed_count == changes + control.retry_count
        self.tally["checked"] += 1


def _launch() -> uuid.UUID:
    return launch_session(options=RunOptions(batch_size=BATCH)).migration_session_id


def _status(session_id: uuid.UUID) -> str:
    return MigrationStatus.objects.get(migration_session_id=session_id).overall_status


def _reset(pair: Pair) -> None:
    with pair.legacy.begin() as conn:
        conn.exec_driver_sql("DELETE FROM item")
        conn.exec_driver_sql("DELETE FROM grp")
    with pair.target.begin() as conn:
        conn.exec_driver_sql("DELETE FROM item")
        conn.exec_driver_sql("DELETE FROM grp")
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(RUN_TABLES)} CASCADE")
    pair.source = Source()


@pytest.fixture
def pair(mysql_to_pg) -> Iterator[Pair]:
    with groups_items_in(mysql_to_pg) as pair:
        yield pair


def test_random_changes_runs_pauses_and_crashes_keep_destination_equal_to_mapped_source(pair):
    tally: Counter = Counter()
    machine = type("Machine", (LegacyAndRuns,), {"pair": pair, "tally": tally})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    assert tally["checked"] > 0
    record(
        "faults",
        "random legacy changes with runs, paused runs and crashed runs (stateful)",
        tried=tally["checked"],
        held=tally["checked"],
        outcome=f"after every completed run ({tally['paused']} paused and resumed, "
        f"{tally['crashed']} crashed and taken over) the destination is the mapped source "
        "and no UUID changed",
    )
