"""The runner carries an update's changed fields from the writer to the record event."""

from __future__ import annotations

import uuid

from migrationsapp.engine.ids import destination_uuid
from migrationsapp.engine.ports import UPSERT
from tests.unit.fakes import MemoryControl, MemorySource, MemoryTable
from tests.unit.test_runner import (
    EMPLOYEE,
    EMPLOYEE_SPEC,
    EMPLOYEES,
    OFFICE,
    OFFICE_SPEC,
    OFFICES,
    office_uuid,
    offices,
    runner,
)


def test_each_update_keeps_its_changed_fields_and_a_new_record_none():
    source = offices((1, "North", "n@x.org"), (2, "South", "s@x.org"), (3, "East", "e@x.org"))
    control = MemoryControl(entity="office")
    control.add_change("new", 1)
    moved, same = uuid.uuid4(), uuid.uuid4()
    writer = MemoryTable("office")
    for key, kept, name in ((2, moved, "Old South"), (3, same, "East")):
        control.add_change("modified", key)
        control.migrated("office", str(key), kept)
        email = f"{name[0].lower()}@x.org" if key == 3 else "s@x.org"
        writer.rows[kept] = {"id": kept, "name": name, "email": email, "legacy_id": key}

    runner(OFFICE_SPEC, OFFICES, OFFICE, source=source, writer=writer, control=control).run(
        phase=UPSERT, after_id=0
    )

    (batch,) = control.committed
    assert {o.key_text: (o.action, o.changes) for o in batch.outcomes} == {
        "1": ("created", None),
        "2": ("updated", {"name": ["Old South", "South"]}),
        "3": ("updated", {}),
    }
    assert writer.rows[office_uuid(1)]["name"] == "North"


def test_a_dry_run_keeps_no_changes():
    source = offices((2, "South", "s@x.org"))
    control = MemoryControl(entity="office")
    kept = uuid.uuid4()
    control.add_change("modified", 2)
    control.migrated("office", "2", kept)
    writer = MemoryTable("office")
    writer.rows[kept] = {"id": kept, "name": "Old", "email": "s@x.org", "legacy_id": 2}

    runner(
        OFFICE_SPEC, OFFICES, OFFICE, source=source, writer=writer, control=control, dry_run=True
    ).run(phase=UPSERT, after_id=0)

    (batch,) = control.committed
    assert [(o.action, o.changes) for o in batch.outcomes] == [("updated", None)]
    assert writer.rows[kept]["name"] == "Old"


def test_a_self_reference_held_for_the_second_pass_is_not_reported_as_cleared():
    # 2's new manager, 3, is new in this run: the first pass writes 2's manager_id NULL for
    # now and the second pass sets it; the first pass's NULL is not reported as a change.
    source = MemorySource(
        {
            "employees": [
                {"id": 1, "name": "A", "manager": None},
                {"id": 2, "name": "B2", "manager": 3},
                {"id": 3, "name": "C", "manager": None},
            ]
        }
    )
    control = MemoryControl(entity="employee")
    writer = MemoryTable("employee")
    u = {k: destination_uuid("employee", str(k)) for k in (1, 2, 3)}
    for key, name, manager in ((1, "A", None), (2, "B", u[1])):
        control.add_change("modified", key)
        control.migrated("employee", str(key), u[key])
        writer.rows[u[key]] = {"id": u[key], "name": name, "manager_id": manager}
    control.add_change("new", 3)

    runner(EMPLOYEE_SPEC, EMPLOYEES, EMPLOYEE, source=source, writer=writer, control=control).run(
        phase=UPSERT, after_id=0
    )

    (batch,) = control.committed
    assert {o.key_text: o.changes for o in batch.outcomes} == {
        "1": {},
        "2": {"name": ["B", "B2"]},
        "3": None,
    }
    assert writer.rows[u[2]]["manager_id"] is None  # until the second pass
