"""The runner's batch loop on in-memory ports (tests/unit/fakes.py): no database.

Each test builds a small change set, runs ``EntityRunner`` (and, for `reference: self`, the
second pass) and asserts exactly what happened to every key: its action and reason, the
destination rows, the record map, the checkpoint, and the stage seconds of every batch.
The same behaviours against the real databases are in tests/integration/.
"""

from __future__ import annotations

import datetime as dt
import gc
import uuid
import weakref
from zoneinfo import ZoneInfo

import pytest

from migrationsapp.engine.batch_loop import UnitOutcome
from migrationsapp.engine.compile import compile_entity
from migrationsapp.engine.connectors import ColumnInfo, TableInfo
from migrationsapp.engine.ids import destination_uuid
from migrationsapp.engine.mapping.spec import EntitySpec, FieldSpec
from migrationsapp.engine.outcomes import RecordAction, UnitStatus
from migrationsapp.engine.ports import DELETE, LINK, UPSERT, StopRequest
from migrationsapp.engine.runner import EntityRunner
from migrationsapp.engine.selfref import SelfLinker, unlink_before_deletes
from migrationsapp.engine.stages import STAGES
from migrationsapp.engine.validation import RuleSpec, compile_rules
from tests.support.reliability import record
from tests.unit.fakes import (
    Crash,
    CrashAt,
    MemoryControl,
    MemorySource,
    MemoryTable,
    RecordingProgress,
)

TODAY = dt.date(2026, 5, 4)


def column(name: str, kind: str = "text", *, nullable: bool = True) -> ColumnInfo:
    return ColumnInfo(
        name=name,
        kind=kind,
        sql_type=kind.upper(),
        nullable=nullable,
        has_default=False,
        primary_key=name == "id",
    )


def table(name: str, *columns: ColumnInfo) -> TableInfo:
    return TableInfo(
        name=name,
        schema=None,
        columns={c.name: c for c in columns},
        primary_key=tuple(c.name for c in columns if c.primary_key),
    )


OFFICE_SPEC = EntitySpec(
    name="office",
    source_table="offices",
    source_key=("id",),
    destination_table="office",
    fields=(
        FieldSpec(destination="name", source="name", required=True, transform="trim"),
        FieldSpec(destination="email", source="email", transform="email"),
        FieldSpec(destination="legacy_id", source="id"),
    ),
    validation=(
        RuleSpec(field="email", rule="format", params={"pattern": "email"}),
        RuleSpec(field="email", rule="unique"),
    ),
)
OFFICES = table("offices", column("id", "integer"), column("name"), column("email"))
OFFICE = table(
    "office",
    column("id", "uuid", nullable=False),
    column("name", nullable=False),
    column("email"),
    column("legacy_id", "integer"),
    column("deleted_at", "datetime_tz"),
)

DOCTOR_SPEC = EntitySpec(
    name="doctor",
    source_table="doctors",
    source_key=("id",),
    destination_table="doctor",
    depends_on=("office",),
    fields=(
        FieldSpec(destination="office_id", source="office_id", reference="office"),
        FieldSpec(destination="name", source="name"),
    ),
)
DOCTORS = table("doctors", column("id", "integer"), column("office_id", "integer"), column("name"))
DOCTOR = table(
    "doctor", column("id", "uuid", nullable=False), column("office_id", "uuid"), column("name")
)

EMPLOYEE_SPEC = EntitySpec(
    name="employee",
    source_table="employees",
    source_key=("id",),
    destination_table="employee",
    fields=(
        FieldSpec(destination="name", source="name"),
        FieldSpec(destination="manager_id", source="manager", reference="self"),
    ),
)
EMPLOYEES = table(
    "employees", column("id", "integer"), column("name"), column("manager", "integer")
)
EMPLOYEE = table(
    "employee", column("id", "uuid", nullable=False), column("name"), column("manager_id", "uuid")
)


def runner(
    spec: EntitySpec,
    source_table: TableInfo,
    destination_table: TableInfo,
    *,
    source: MemorySource,
    writer: MemoryTable,
    control: MemoryControl,
    **options,
) -> EntityRunner:
    compiled = compile_entity(spec, source_table, destination_table, timezone=ZoneInfo("UTC"))
    rules = compile_rules(spec.name, list(spec.validation), [f.destination for f in spec.fields])
    return EntityRunner(
        compiled=compiled,
        source=source,
        writer=writer,
        ports=control,
        rules=rules,
        today=TODAY,
        **options,
    )


def offices(*rows: tuple[int, str, str | None]) -> MemorySource:
    return MemorySource({"offices": [{"id": i, "name": n, "email": e} for i, n, e in rows]})


def office_uuid(key: int) -> uuid.UUID:
    return destination_uuid("office", str(key))


def assert_stage_invariants(control: MemoryControl) -> None:
    """Every committed batch: its stages are measured, disjoint, and inside its wall time."""
    for result in control.committed:
        stages = result.stages
        assert all(getattr(stages, name) >= 0 for name in STAGES)
        runner_part = stages.read + stages.transform + stages.validate + stages.write
        assert runner_part <= result.seconds
    for totals in control.timing.values():
        assert totals.stages.total() <= totals.seconds


# -- upserts -------------------------------------------------------------------------------------


def test_an_upsert_batch_creates_updates_fails_and_skips_each_record_with_its_reason():
    source = offices(
        (1, "  North ", "A@X.ORG"),
        (2, "South", "south@x.org"),
        (3, "East", "not-an-email"),
        (4, "   ", "west@x.org"),
    )
    control = MemoryControl(entity="office")
    for key in (1, 2, 3, 4, 5):
        control.add_change("modified" if key == 2 else "new", key)
    kept = uuid.uuid4()  # office 2 was migrated before, under a UUID it keeps for ever
    control.migrated("office", "2", kept)
    writer = MemoryTable("office")

    outcome = runner(
        OFFICE_SPEC, OFFICES, OFFICE, source=source, writer=writer, control=control
    ).run(phase=UPSERT, after_id=0)

    assert (outcome.status, outcome.batches, outcome.last_change_id) == ("done", 1, 5)
    assert (outcome.processed, outcome.failed, outcome.skipped) == (2, 2, 1)
    assert control.actions() == {
        "1": "created",
        "2": "updated",
        "3": "failed",
        "4": "failed",
        "5": "skipped",
    }
    reasons = {e.key_text: e.reason for e in control.events}
    assert reasons["3"] == "field 'email': format: 'not-an-email' is not a valid email"
    assert reasons["4"] == "field 'name': required: source column 'name' is empty"
    assert reasons["5"] == "gone from the source since the analysis"
    assert (control.quarantine["3"].field, control.quarantine["3"].rule) == ("email", "format")
    assert (control.quarantine["4"].field, control.quarantine["4"].rule) == ("name", "required")
    assert writer.rows == {
        office_uuid(1): {"id": office_uuid(1), "name": "North", "email": "a@x.org", "legacy_id": 1},
        kept: {"id": kept, "name": "South", "email": "south@x.org", "legacy_id": 2},
    }
    assert {k: e.uuid for k, e in control.record_map["office"].items()} == {
        "1": office_uuid(1),
        "2": kept,
    }
    assert control.position(UPSERT) == 5
    assert_stage_invariants(control)


def test_changes_read_with_their_rows_are_written_without_a_fetch():
    """A baseline by key range: each change comes with its source row."""
    source = offices()
    control = MemoryControl(entity="office")
    rows = [(1, "  North ", "A@X.ORG"), (2, "East", "not-an-email"), (3, "South", None)]
    for key, name, email in rows:
        control.add_change("new", key, row={"id": key, "name": name, "email": email})
    writer = MemoryTable("office")

    outcome = runner(
        OFFICE_SPEC, OFFICES, OFFICE, source=source, writer=writer, control=control
    ).run(phase=UPSERT, after_id=0)

    assert source.fetches == 0
    assert (outcome.processed, outcome.failed, outcome.skipped) == (2, 1, 0)
    assert control.actions() == {"1": "created", "2": "failed", "3": "created"}
    assert writer.rows == {
        office_uuid(1): {"id": office_uuid(1), "name": "North", "email": "a@x.org", "legacy_id": 1},
        office_uuid(3): {"id": office_uuid(3), "name": "South", "email": None, "legacy_id": 3},
    }
    assert_stage_invariants(control)


def test_a_row_the_destination_refuses_fails_alone_naming_its_column():
    source = offices((1, "North", "n@x.org"), (2, "South", "s@x.org"))
    control = MemoryControl(entity="office")
    control.add_change("new", 1)
    control.add_change("new", 2)
    writer = MemoryTable("office")
    writer.refuse[("name", "South")] = "value too long for type character varying(4)"

    runner(OFFICE_SPEC, OFFICES, OFFICE, source=source, writer=writer, control=control).run(
        phase=UPSERT, after_id=0
    )

    assert control.actions() == {"1": "created", "2": "failed"}
    error = control.quarantine["2"]
    assert (error.rule, error.field, error.value) == ("destination", "name", "South")
    assert str(error) == (
        "field 'name': destination refused the row: value too long for type character varying(4)"
    )
    assert list(writer.rows) == [office_uuid(1)]


def test_references_resolve_through_the_record_map_and_a_missing_parent_fails_the_row():
    source = MemorySource(
        {
            "doctors": [
                {"id": 10, "office_id": 1, "name": "Ann"},
                {"id": 11, "office_id": 9, "name": "Bob"},
                {"id": 12, "office_id": None, "name": "Cy"},
            ]
        }
    )
    control = MemoryControl(entity="doctor")
    for key in (10, 11, 12):
        control.add_change("new", key)
    office = uuid.uuid4()
    control.migrated("office", "1", office)
    control.migrated("office", "9", uuid.uuid4())
    control.record_map["office"]["9"].deleted = True  # deleted parents are not parents
    writer = MemoryTable("doctor")

    runner(DOCTOR_SPEC, DOCTORS, DOCTOR, source=source, writer=writer, control=control).run(
        phase=UPSERT, after_id=0
    )

    assert control.actions() == {"10": "created", "11": "failed", "12": "created"}
    error = control.quarantine["11"]
    assert str(error) == "field 'office_id': missing parent: office '9' has not been migrated"
    assert (error.field, error.rule, error.value) == ("office_id", "reference", "9")
    doctor = destination_uuid("doctor", "10")
    assert writer.rows[doctor]["office_id"] == office
    assert writer.rows[destination_uuid("doctor", "12")]["office_id"] is None


def test_a_runner_is_freed_with_what_it_remembered_as_soon_as_it_is_dropped():
    """No reference cycle: a run collects cycles rarely (engine.gc_policy), and a runner of
    every unit kept until then, each with its parents' UUIDs, grew with the table."""
    source = MemorySource({"doctors": [{"id": 10, "office_id": 1, "name": "Ann"}]})
    control = MemoryControl(entity="doctor")
    control.add_change("new", 10)
    control.migrated("office", "1", uuid.uuid4())
    unit = runner(
        DOCTOR_SPEC, DOCTORS, DOCTOR, source=source, writer=MemoryTable("doctor"), control=control
    )
    unit.run(phase=UPSERT, after_id=0)
    gone = weakref.ref(unit)
    enabled = gc.isenabled()
    gc.disable()
    try:
        del unit
        assert gone() is None
    finally:
        if enabled:
            gc.enable()


def test_unique_values_are_checked_in_the_batch_and_against_the_destination():
    source = offices(
        (1, "One", "same@x.org"),
        (2, "Two", "same@x.org"),
        (3, "Three", "taken@x.org"),
        (4, "Four", "mine@x.org"),
    )
    control = MemoryControl(entity="office")
    for key in (1, 2, 3):
        control.add_change("new", key)
    control.add_change("modified", 4)
    writer = MemoryTable("office")
    other = uuid.uuid4()  # a destination row that is no record of this run
    writer.rows[other] = {"id": other, "name": "Other", "email": "taken@x.org", "legacy_id": 99}
    own = uuid.uuid4()  # office 4's own row keeps its own value: no clash with itself
    writer.rows[own] = {"id": own, "name": "Four", "email": "mine@x.org", "legacy_id": 4}
    control.migrated("office", "4", own)

    runner(OFFICE_SPEC, OFFICES, OFFICE, source=source, writer=writer, control=control).run(
        phase=UPSERT, after_id=0
    )

    assert control.actions() == {"1": "created", "2": "failed", "3": "failed", "4": "updated"}
    assert str(control.quarantine["2"]) == (
        "field 'email': unique: duplicate value 'same@x.org' (also in record 1)"
    )
    assert str(control.quarantine["3"]) == (
        "field 'email': unique: 'taken@x.org' is already used by another destination record"
    )
    assert {r["legacy_id"] for r in writer.rows.values()} == {1, 4, 99}


def test_a_new_record_adopts_the_destination_row_that_matches_on_match_on():
    spec = EntitySpec(**{**OFFICE_SPEC.__dict__, "match_on": ("email",)})
    source = offices((1, "North", "n@x.org"), (2, "South", "s@x.org"))
    control = MemoryControl(entity="office")
    control.add_change("new", 1)
    control.add_change("new", 2)
    writer = MemoryTable("office")
    existing = uuid.uuid4()
    writer.rows[existing] = {"id": existing, "name": "old", "email": "n@x.org", "legacy_id": None}

    runner(spec, OFFICES, OFFICE, source=source, writer=writer, control=control).run(
        phase=UPSERT, after_id=0
    )

    assert control.actions() == {"1": "updated", "2": "created"}
    assert control.events[0].reason == "adopted existing destination row by match_on (email)"
    assert control.record_map["office"]["1"].uuid == existing
    assert writer.rows[existing]["name"] == "North"
    assert len(writer.rows) == 2


def test_a_dry_run_writes_nothing_and_records_only_its_checkpoint():
    source = offices((1, "North", "n@x.org"), (2, "South", "bad"))
    control = MemoryControl(entity="office")
    control.add_change("new", 1)
    control.add_change("new", 2)
    writer = MemoryTable("office")

    outcome = runner(
        OFFICE_SPEC, OFFICES, OFFICE, source=source, writer=writer, control=control, dry_run=True
    ).run(phase=UPSERT, after_id=0)

    assert (outcome.processed, outcome.failed) == (1, 1)
    assert [o.action for o in control.committed[0].outcomes] == ["created", "failed"]
    assert control.committed[0].dry_run is True
    assert (writer.writes, writer.rows) == ([], {})
    assert (control.record_map, control.events, control.quarantine) == ({}, [], {})
    assert control.position(UPSERT) == 2
    assert control.committed[0].stages.write == 0.0  # nothing was written
    assert_stage_invariants(control)


# -- the loop: batches, slices, pause and cancel, a crash ---------------------------------------


def five_offices() -> tuple[MemorySource, MemoryControl]:
    source = offices(*((k, f"Office {k}", f"o{k}@x.org") for k in range(1, 6)))
    control = MemoryControl(entity="office")
    for key in range(1, 6):
        control.add_change("new", key)
    return source, control


def test_batches_follow_the_change_set_and_tell_the_progress_sink():
    source, control = five_offices()
    progress = RecordingProgress()
    writer = MemoryTable("office")

    outcome = runner(
        OFFICE_SPEC,
        OFFICES,
        OFFICE,
        source=source,
        writer=writer,
        control=control,
        batch_size=2,
        progress=progress,
    ).run(phase=UPSERT, after_id=0)

    assert (outcome.status, outcome.batches, outcome.processed) == ("done", 3, 5)
    assert [r.last_change_id for r in control.committed] == [2, 4, 5]
    assert progress.batches == [("office", UPSERT, 2), ("office", UPSERT, 2), ("office", UPSERT, 1)]
    totals = control.timing[UPSERT]
    assert totals.batches == 3
    assert_stage_invariants(control)


def test_max_batches_returns_slices_that_continue_from_the_checkpoint():
    source, control = five_offices()
    run = runner(
        OFFICE_SPEC,
        OFFICES,
        OFFICE,
        source=source,
        writer=MemoryTable("office"),
        control=control,
        batch_size=2,
    )

    slices = []
    while True:
        outcome = run.run(phase=UPSERT, after_id=control.position(), max_batches=1)
        slices.append((outcome.status, outcome.batches, outcome.last_change_id))
        if outcome.status == UnitStatus.DONE:
            break

    assert slices == [
        (UnitStatus.SLICE, 1, 2),
        (UnitStatus.SLICE, 1, 4),
        (UnitStatus.SLICE, 1, 5),
        (UnitStatus.DONE, 0, 5),
    ]
    assert {type(status) for status, _, _ in slices} == {UnitStatus}
    assert sorted(control.actions().values()) == [RecordAction.CREATED] * 5


def test_a_unit_outcome_given_a_plain_status_holds_the_enum():
    assert UnitOutcome(status="slice", last_change_id=0).status is UnitStatus.SLICE
    with pytest.raises(ValueError):
        UnitOutcome(status="finished", last_change_id=0)


@pytest.mark.parametrize(
    ("request_", "status"),
    [(StopRequest.PAUSE, UnitStatus.PAUSED), (StopRequest.CANCEL, UnitStatus.CANCELLED)],
)
def test_a_stop_request_is_honoured_between_batches(request_, status):
    source, control = five_offices()
    control.stop, control.stop_after = request_, 1  # asked while the first batch ran
    writer = MemoryTable("office")
    run = runner(
        OFFICE_SPEC, OFFICES, OFFICE, source=source, writer=writer, control=control, batch_size=2
    )

    outcome = run.run(phase=UPSERT, after_id=0)

    assert (outcome.status, outcome.batches, outcome.last_change_id) == (status, 1, 2)
    assert type(outcome.status) is UnitStatus
    assert sorted(control.actions()) == ["1", "2"]
    assert len(writer.rows) == 2
    # Resumed (the request cleared), the run continues after the checkpoint.
    control.stop = StopRequest.NONE
    outcome = run.run(phase=UPSERT, after_id=control.position())
    assert (outcome.status, outcome.batches) == ("done", 2)
    assert sorted(control.actions()) == ["1", "2", "3", "4", "5"]
    assert len(writer.rows) == 5


def test_a_request_made_before_the_first_batch_writes_nothing():
    source, control = five_offices()
    control.stop = StopRequest.PAUSE
    writer = MemoryTable("office")

    outcome = runner(
        OFFICE_SPEC, OFFICES, OFFICE, source=source, writer=writer, control=control
    ).run(phase=UPSERT, after_id=0)

    assert (outcome.status, outcome.batches) == ("paused", 0)
    assert (writer.writes, control.committed, source.fetches) == ([], [], 0)


def test_a_crash_between_the_destination_and_the_control_commit_replays_the_batch():
    source, control = five_offices()
    writer = MemoryTable("office")
    crash = CrashAt("after_destination_commit", nth=2)
    run = runner(
        OFFICE_SPEC,
        OFFICES,
        OFFICE,
        source=source,
        writer=writer,
        control=control,
        batch_size=2,
        fault=crash,
    )

    with pytest.raises(Crash):
        run.run(phase=UPSERT, after_id=0)
    # The second batch is in the destination, not in the control database.
    assert (len(writer.rows), control.position()) == (4, 2)
    assert sorted(control.record_map["office"]) == ["1", "2"]

    outcome = run.run(phase=UPSERT, after_id=control.position())

    assert (outcome.status, outcome.batches) == ("done", 2)
    assert sorted(writer.rows) == sorted(office_uuid(k) for k in range(1, 6))
    assert {k: e.uuid for k, e in control.record_map["office"].items()} == {
        str(k): office_uuid(k) for k in range(1, 6)
    }
    # Each record is recorded once: the crashed batch's first try left no event.
    assert [e.key_text for e in control.events] == ["1", "2", "3", "4", "5"]
    assert control.timing[UPSERT].batches == 3
    record(
        "faults",
        "crash between the destination and the control commit (in-memory ports)",
        tried=1,
        held=1,
        outcome="the batch is replayed from the checkpoint: same UUIDs, no row or event twice",
    )


def test_a_copy_that_lost_its_lease_stops_without_recording_the_batch():
    from migrationsapp.engine.errors import LeaseLostError

    source, control = five_offices()
    control.lease_lost = True

    with pytest.raises(LeaseLostError):
        runner(
            OFFICE_SPEC,
            OFFICES,
            OFFICE,
            source=source,
            writer=MemoryTable("office"),
            control=control,
        ).run(phase=UPSERT, after_id=0)

    assert (control.committed, control.events, control.position()) == ([], [], 0)


# -- deletes -------------------------------------------------------------------------------------


def offices_to_delete(policy: str) -> tuple[EntitySpec, MemoryControl, MemoryTable, MemoryTable]:
    spec = EntitySpec(
        **{
            **OFFICE_SPEC.__dict__,
            "deletes": policy,
            "soft_delete_column": "deleted_at" if policy == "soft" else None,
        }
    )
    control = MemoryControl(entity="office")
    office, doctors = MemoryTable("office"), MemoryTable("doctor")
    office.children.append((doctors, "office_id"))
    for key in (1, 2, 3):
        row = uuid.uuid4()
        office.rows[row] = {"id": row, "name": f"O{key}", "deleted_at": None}
        control.migrated("office", str(key), row)
        control.add_change("deleted", key)
    control.add_change("deleted", 4)  # already marked deleted by an earlier try of this batch
    control.migrated("office", "4", uuid.uuid4())
    control.record_map["office"]["4"].deleted = True
    # A doctor still points at office 2.
    doctor = uuid.uuid4()
    doctors.rows[doctor] = {"id": doctor, "office_id": control.record_map["office"]["2"].uuid}
    return spec, control, office, doctors


def test_hard_deletes_remove_rows_and_a_parent_still_referenced_fails_alone():
    spec, control, office, _ = offices_to_delete("hard")

    outcome = runner(
        spec, OFFICES, OFFICE, source=MemorySource({}), writer=office, control=control
    ).run(phase=DELETE, after_id=0)

    assert (outcome.processed, outcome.failed, outcome.skipped) == (2, 1, 1)
    assert control.actions() == {"1": "deleted", "2": "failed", "3": "deleted", "4": "skipped"}
    assert control.quarantine["2"].rule == "delete"
    assert str(control.quarantine["2"]).startswith(
        'destination refused the row: update or delete on table "office" violates foreign key'
    )
    assert list(office.rows) == [control.record_map["office"]["2"].uuid]
    assert [k for k, e in control.record_map["office"].items() if e.deleted] == ["1", "3", "4"]
    assert control.position(DELETE) == 4
    delete_batch = control.committed[0].stages
    assert (delete_batch.transform, delete_batch.validate) == (0.0, 0.0)
    assert_stage_invariants(control)
    record(
        "faults",
        "delete of a parent the destination still references (in-memory ports)",
        tried=1,
        held=1,
        outcome="that record fails with the database's reason; the others are deleted",
    )


def test_soft_deletes_mark_the_rows_and_keep_them():
    spec, control, office, _ = offices_to_delete("soft")

    runner(spec, OFFICES, OFFICE, source=MemorySource({}), writer=office, control=control).run(
        phase=DELETE, after_id=0
    )

    assert control.actions() == {"1": "deleted", "2": "deleted", "3": "deleted", "4": "skipped"}
    assert len(office.rows) == 3
    assert all(isinstance(r["deleted_at"], dt.datetime) for r in office.rows.values())


def test_report_deletes_write_nothing_and_count_as_skipped():
    spec, control, office, _ = offices_to_delete("report")
    before = {k: dict(v) for k, v in office.rows.items()}

    outcome = runner(
        spec, OFFICES, OFFICE, source=MemorySource({}), writer=office, control=control
    ).run(phase=DELETE, after_id=0)

    assert (outcome.processed, outcome.failed, outcome.skipped) == (0, 0, 4)
    assert set(control.actions().values()) == {"skipped"}
    assert (office.writes, office.rows) == ([], before)
    assert [k for k, e in control.record_map["office"].items() if e.deleted] == ["4"]


# -- reference: self -----------------------------------------------------------------------------


def test_self_references_to_parents_of_later_batches_are_set_by_the_second_pass():
    # 1 manages 2 and is managed by 3 (a later batch); 4's manager 9 is in no change set.
    source = MemorySource(
        {
            "employees": [
                {"id": 1, "name": "A", "manager": 3},
                {"id": 2, "name": "B", "manager": 1},
                {"id": 3, "name": "C", "manager": 1},
                {"id": 4, "name": "D", "manager": 9},
            ]
        }
    )
    control = MemoryControl(entity="employee")
    for key in (1, 2, 3, 4):
        control.add_change("new", key)
    writer = MemoryTable("employee")
    run = runner(
        EMPLOYEE_SPEC,
        EMPLOYEES,
        EMPLOYEE,
        source=source,
        writer=writer,
        control=control,
        batch_size=2,
    )

    run.run(phase=UPSERT, after_id=0)
    u = {k: destination_uuid("employee", str(k)) for k in (1, 2, 3, 4)}
    assert control.actions() == {"1": "created", "2": "created", "3": "created", "4": "failed"}
    assert str(control.quarantine["4"]) == (
        "field 'manager_id': missing parent: employee '9' has not been migrated"
    )
    # Written NULL where the parent was still to come (1 → 3; 2 → 1 in the same batch).
    assert {k: writer.rows[u[k]]["manager_id"] for k in (1, 2, 3)} == {1: None, 2: None, 3: u[1]}

    linked = SelfLinker(entity="employee", writer=writer, ports=control, batch_size=2).run(
        after_id=0
    )

    assert (linked.status, linked.failed) == ("done", 0)
    assert {k: writer.rows[u[k]]["manager_id"] for k in (1, 2, 3)} == {1: u[3], 2: u[1], 3: u[1]}
    assert sum(r.linked for r in control.committed_links) == 2
    assert control.timing[LINK].batches == len(control.committed_links) == 1

    # Before hard deletes, the self references of the rows about to go are cleared.
    for key in (1, 3):
        control.add_change("deleted", key)
    cleared = unlink_before_deletes(
        entity="employee",
        columns=["manager_id"],
        writer=writer,
        ports=control,
        after_id=0,
    )
    assert cleared == 2
    assert {k: writer.rows[u[k]]["manager_id"] for k in (1, 2, 3)} == {1: None, 2: u[1], 3: None}


def self_linked_employees(count: int) -> tuple[MemoryTable, MemoryControl]:
    """``count`` employees upserted in one batch, each managed by the next (the last by the
    first): every one written with its manager NULL and its link kept for the second pass."""
    source = MemorySource(
        {
            "employees": [
                {"id": k, "name": f"e{k}", "manager": k % count + 1} for k in range(1, count + 1)
            ]
        }
    )
    control = MemoryControl(entity="employee")
    for key in range(1, count + 1):
        control.add_change("new", key)
    writer = MemoryTable("employee")
    runner(EMPLOYEE_SPEC, EMPLOYEES, EMPLOYEE, source=source, writer=writer, control=control).run(
        phase=UPSERT, after_id=0
    )
    assert len(control.links) == count
    return writer, control


def test_the_second_pass_runs_in_slices_that_continue_from_its_checkpoint():
    writer, control = self_linked_employees(5)
    linker = SelfLinker(entity="employee", writer=writer, ports=control, batch_size=2)

    slices = []
    while True:
        outcome = linker.run(after_id=control.position(LINK), max_batches=1)
        slices.append((outcome.status, outcome.batches, outcome.last_change_id))
        if outcome.status == UnitStatus.DONE:
            break

    assert slices == [
        (UnitStatus.SLICE, 1, 2),
        (UnitStatus.SLICE, 1, 4),
        (UnitStatus.SLICE, 1, 5),
        (UnitStatus.DONE, 0, 5),
    ]
    assert all(row["manager_id"] is not None for row in writer.rows.values())


def test_the_second_pass_stops_between_batches_as_asked():
    writer, control = self_linked_employees(5)
    control.stop, control.stop_after = StopRequest.PAUSE, len(control.committed)
    linker = SelfLinker(entity="employee", writer=writer, ports=control, batch_size=2)

    outcome = linker.run(after_id=0)

    assert (outcome.status, outcome.batches) == (UnitStatus.PAUSED, 0)
    assert (control.committed_links, writer.writes.count("update_columns")) == ([], 0)


def test_a_crash_after_the_second_pass_wrote_a_batch_replays_it():
    writer, control = self_linked_employees(5)
    crash = CrashAt("after_destination_commit", nth=2)
    linker = SelfLinker(entity="employee", writer=writer, ports=control, batch_size=2, fault=crash)

    with pytest.raises(Crash):
        linker.run(after_id=0)
    assert control.position(LINK) == 2  # the second batch is written, not checkpointed

    outcome = linker.run(after_id=control.position(LINK))

    assert (outcome.status, outcome.batches, outcome.failed) == (UnitStatus.DONE, 2, 0)
    assert [r.last_change_id for r in control.committed_links] == [2, 4, 5]
    u = {k: destination_uuid("employee", str(k)) for k in range(1, 6)}
    assert {k: writer.rows[u[k]]["manager_id"] for k in u} == {k: u[k % 5 + 1] for k in range(1, 6)}
