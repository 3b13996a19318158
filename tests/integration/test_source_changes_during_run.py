"""The legacy database keeps changing while a run is under way: the run finishes, and the next
run picks up exactly what it missed, and nothing else.

The changes are written from another MariaDB connection between two batches of the items'
upserts (through the runner's fault hook, which only observes here), or while the analysis
streams the source (held mid-result by tests.support.stalled_read). What the next run must
find follows from the rules, computed here from the rows the test wrote:

* a row inserted during the run is ``new`` next time;
* a row updated during the run is ``modified`` next time, whether the run wrote it before
  the update (old values), after it (new values: the record map keeps the analysed hash,
  so it is written once more, with the same UUID), or did not have it in its change set;
* a migrated row deleted during the run is ``deleted`` next time; if the run still had it
  to write, it skips it ("gone from the source since the analysis");
* a row the run deletes but that comes back during the run is ``modified`` next time, with
  the UUID it always had;
* a change to an unmapped column is nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from migrationsapp.engine.ids import destination_uuid
from migrationsapp.models import MigrationControl, MigrationStatus, RecordEvent
from migrationsapp.models.choices import SessionStatus
from migrationsapp.services.runs import RunOptions, run_session
from tests.support.groups_items import (
    Pair,
    control_counts,
    expected_destination,
    groups_items_in,
    import_groups_items_mapping,
)
from tests.support.reliability import record
from tests.support.stalled_read import VIEW, create_stall_view, lock_held, release, when_read_stalls

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

BATCH = 20


@pytest.fixture
def pair(mysql_to_pg) -> Iterator[Pair]:
    with groups_items_in(mysql_to_pg) as pair:
        pair.add_groups({g: f"group {g}" for g in range(1, 11)})
        pair.add_items({i: (1 + i % 10, f"item {i}", i) for i in range(1, 401)})
        yield pair


def _run(fault=None, batch_size: int = BATCH) -> uuid.UUID:
    session = run_session(options=RunOptions(batch_size=batch_size), fault=fault)
    assert session.overall_status == SessionStatus.COMPLETED
    return session.migration_session_id


def _latest() -> list[uuid.UUID]:
    """The session being executed (the newest)."""
    return [MigrationStatus.objects.latest("created_at").migration_session_id]


def _controls(session_id: uuid.UUID) -> dict[str, MigrationControl]:
    return {c.entity_type: c for c in MigrationControl.objects.filter(session_id=session_id)}


def _events(session_id: uuid.UUID, entity: str) -> dict[str, str]:
    return dict(
        RecordEvent.objects.filter(session_id=session_id, entity_type=entity).values_list(
            "legacy_key_text", "action"
        )
    )


def _assert_destination_is_the_mapped_source(pair: Pair) -> None:
    expected = expected_destination(pair.source)
    rows, uuids = pair.destination()
    assert rows == expected
    for entity in ("grp", "item"):
        # First migrated → uuid5(entity, key); never changed since, even across a delete.
        assert uuids[entity] == {key: destination_uuid(entity, key) for key in expected[entity]}


def test_changes_written_between_two_batches_are_exactly_what_the_next_run_finds(pair):
    _run()
    # Before the run: its change set (items: 40 modified, 20 new, 6 deleted).
    modified_1 = list(range(10, 410, 10))  # 40 items, in every batch of the run
    pair.update_items({i: (1 + i % 10, f"before {i}", -i) for i in modified_1})
    pair.add_items({i: (2, f"new {i}", None) for i in range(501, 521)})
    deleted_1 = [3, 13, 23, 33, 43, 301]
    pair.delete_items(deleted_1)
    mid_run: dict[str, list[int]] = {}
    written_before: set[str] = set()
    session_1: list[uuid.UUID] = []

    def between_batches(point: str) -> None:
        if point != "after_control_commit" or mid_run:
            return
        if not RecordEvent.objects.filter(entity_type="item", session_id__in=_latest()).exists():
            return  # still the groups: wait for the first batch of items
        written_before.update(_events(_latest()[0], "item"))
        session_1.append(_latest()[0])
        mid_run["inserted"] = list(range(601, 606))
        pair.add_items({i: (5, f"late {i}", i) for i in mid_run["inserted"]})
        pair.add_groups({11: "late group"})
        pair.add_items({606: (11, "late in a late group", 6)})
        mid_run["inserted"].append(606)
        # Updated: modified by this run (written already, or still to come), new in this run,
        # unchanged by this run.
        mid_run["updated"] = [10, 390, 505, 520, 1, 2, 399]
        pair.update_items({i: (9, f"during {i}", 7 * i) for i in mid_run["updated"]})
        # Deleted: migrated and unchanged, modified by this run (written already or not).
        mid_run["deleted"] = [4, 5, 20, 380, 400]
        pair.delete_items(mid_run["deleted"])
        # Deleted before the run (in its change set as a delete) and back during it.
        pair.add_items({301: (3, "back again", 301)})
        pair.touch_items([6, 7], "only the note")
        pair.rename_group(2, "group two renamed")

    _run(between_batches)

    assert mid_run, "the changes were never written"
    controls = _controls(session_1[0])
    item = controls["item"]
    assert control_counts(item) == {
        "new": 20,
        "modified": 40,
        "deleted": 6,
        "unchanged": 400 - 6 - 40,
        "retry": 0,
    }
    # Modified by this run and deleted during it, not written yet: skipped, with the reason.
    skipped = {str(k) for k in mid_run["deleted"] if k in modified_1} - written_before
    events = _events(session_1[0], "item")
    assert {k for k, action in events.items() if action == "skipped"} == skipped
    assert (item.processed_count, item.failed_count, item.skipped_count) == (
        66 - len(skipped),
        0,
        len(skipped),
    )
    assert 0 < len(written_before) < 60  # the changes really came between two batches

    session_2 = _run()

    controls = _controls(session_2)
    assert control_counts(controls["item"]) == {
        "new": 6,
        "modified": 7 + 1,  # the updated ones, and the one deleted then back
        "deleted": 5,
        "unchanged": len(pair.source.items) - 6 - 8,
        "retry": 0,
    }
    assert control_counts(controls["grp"]) == {
        "new": 1,
        "modified": 1,
        "deleted": 0,
        "unchanged": 9,
        "retry": 0,
    }
    events = _events(session_2, "item")
    assert events == {
        **{str(k): "created" for k in mid_run["inserted"]},
        **{str(k): "updated" for k in [*mid_run["updated"], 301]},
        **{str(k): "deleted" for k in mid_run["deleted"]},
    }
    _assert_destination_is_the_mapped_source(pair)

    # Nothing else: a third run finds nothing to do.
    session_3 = _run()
    for entity, control in _controls(session_3).items():
        assert (control.new_count, control.modified_count, control.deleted_count) == (0, 0, 0)
        assert control.processed_count == 0, entity
    _assert_destination_is_the_mapped_source(pair)
    record(
        "faults",
        "source rows inserted, updated and deleted between two batches of a run",
        tried=len(mid_run["inserted"]) + len(mid_run["updated"]) + len(mid_run["deleted"]) + 4,
        held=len(mid_run["inserted"]) + len(mid_run["updated"]) + len(mid_run["deleted"]) + 4,
        outcome="the run completes; the next run finds exactly the changes it missed, nothing "
        "more, and every UUID stays",
    )


# --------------------------------------------------------------------------- during the analysis


@pytest.fixture
def stalled_pair(mysql_to_pg) -> Iterator[tuple[Pair, str]]:
    with groups_items_in(mysql_to_pg, import_mapping=False) as pair:
        lock = create_stall_view(pair, STALL_ID)
        import_groups_items_mapping(item_table=VIEW)
        pair.add_groups({g: f"group {g}" for g in range(1, 4)})
        pair.add_items({i: (1 + i % 3, f"item {i}", i) for i in range(1, 3001)})
        yield pair, lock


STALL_ID = 2500


def test_changes_written_while_the_analysis_reads_wait_for_the_next_run(stalled_pair):
    """The analysis reads one snapshot: what changes during its read is the next run's."""
    pair, lock = stalled_pair
    _run(batch_size=500)
    pair.update_items({i: (2, f"before {i}", None) for i in (10, 1500, 2600)})
    pair.add_items({i: (1, f"new {i}", i) for i in (3001, 3002, 3003)})
    pair.delete_items([20])
    changed: list[int] = []

    with lock_held(pair, lock) as holder:

        def change_then_let_go(process: int) -> None:
            pair.add_items({3101: (3, "during", 1), 3102: (None, "during", 2)})
            pair.update_items({i: (3, f"during {i}", 0) for i in (10, 11, 3001)})
            pair.delete_items([12, 1500, 3002])
            changed.append(process)
            release(holder, lock)

        thread = when_read_stalls(pair, change_then_let_go)
        session_1 = _run(batch_size=500)
        thread.join(timeout=60)

    assert changed, "the read never stalled"
    item = _controls(session_1)["item"]
    # The snapshot before the changes: none of them is in this run's analysis.
    assert control_counts(item) == {
        "new": 3,
        "modified": 3,
        "deleted": 1,
        "unchanged": 2996,
        "retry": 0,
    }
    # Deleted while the analysis read: skipped, "gone from the source since the analysis".
    assert {k for k, a in _events(session_1, "item").items() if a == "skipped"} == {"1500", "3002"}
    assert (item.processed_count, item.skipped_count) == (5, 2)

    session_2 = _run(batch_size=500)

    item = _controls(session_2)["item"]
    assert control_counts(item) == {
        "new": 2,
        "modified": 3,
        "deleted": 2,
        "unchanged": len(pair.source.items) - 5,
        "retry": 0,
    }
    assert _events(session_2, "item") == {
        "3101": "created",
        "3102": "created",
        "10": "updated",
        "11": "updated",
        "3001": "updated",
        "12": "deleted",
        "1500": "deleted",
    }
    _assert_destination_is_the_mapped_source(pair)
    record(
        "faults",
        "source rows inserted, updated and deleted while the analysis reads",
        tried=8,
        held=8,
        outcome="the run sees one snapshot and completes; the next run finds exactly the changes "
        "made during the read",
    )
