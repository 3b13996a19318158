"""Crashes, pauses and resumes of real sessions: nothing is duplicated, nothing is lost.

The legacy clinic (migrationsapp.demo.clinic) runs from MariaDB into PostgreSQL with small
batches. Crashes are injected through the engine's ``fault`` hook at the two points of the
two-commit protocol: after the destination committed a batch (the control database has
not recorded it: the batch is replayed) and after the control commit (the checkpoint holds
it). The crash is a BaseException, like a killed process: nothing in the engine catches it,
so the session is left ``running`` with a lease that nobody renews.

What an uninterrupted run produces is computed without the engine: the rows by
``expected_destination`` and the UUIDs by uuid5(entity, key text) (``destination_uuid``),
which ``test_uninterrupted_baseline_writes_the_expected_rows_and_uuids`` checks against a
real run first.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from django.test import override_settings

from migrationsapp.demo.clinic import (
    ENTITIES,
    MAPPING_FILE,
    ClinicData,
    apply_changes,
    create_destination_schema,
    create_legacy_schema,
    expected_analysis,
    expected_destination,
    expected_failures,
    generate_clinic,
    legacy_transaction,
    load_legacy,
)
from migrationsapp.demo.clinic_schema import delete_rows
from migrationsapp.engine.errors import StateTransitionError
from migrationsapp.engine.ids import destination_uuid
from migrationsapp.models import (
    MigrationControl,
    MigrationExecutionLog,
    MigrationStatus,
    QuarantinedRecord,
    RecordEvent,
    RecordMap,
)
from migrationsapp.models.choices import EntityState, OperationType, SessionStatus
from migrationsapp.services.mappings import import_mapping_text
from migrationsapp.services.runs import (
    RunOptions,
    execute_session,
    launch_session,
    prepare_resume,
    request_pause,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SEED = 20240701
BATCH = 20
AFTER_DESTINATION = "after_destination_commit"
AFTER_CONTROL = "after_control_commit"
# Destination columns holding a parent's UUID, and the parent entity.
REFERENCES = {
    "doctor": {"office_id": "office"},
    "patient": {"doctor_id": "doctor"},
    "appointment": {"patient_id": "patient", "doctor_id": "doctor"},
}


class Crash(BaseException):
    """The process dies here: not an Exception, so no handler of the engine swallows it."""


@dataclass
class Clinic:
    legacy: sa.Engine
    target: sa.Engine
    data: ClinicData


@pytest.fixture
def clinic(mysql_to_pg) -> Iterator[Clinic]:
    """The clinic loaded into a scratch MariaDB, an empty destination, the mapping imported."""
    legacy_url, target_url = mysql_to_pg
    legacy = sa.create_engine(
        sa.make_url(legacy_url).set(drivername="mysql+pymysql", query={"charset": "utf8mb4"})
    )
    target = sa.create_engine(sa.make_url(target_url).set(drivername="postgresql+psycopg"))
    data = generate_clinic(SEED)
    create_legacy_schema(legacy)
    load_legacy(legacy, data)
    create_destination_schema(target)
    import_mapping_text(text=MAPPING_FILE.read_text(encoding="utf-8"))
    yield Clinic(legacy=legacy, target=target, data=data)
    legacy.dispose()
    target.dispose()


# --------------------------------------------------------------------------- helpers


def _launch() -> uuid.UUID:
    return launch_session(options=RunOptions(batch_size=BATCH)).migration_session_id


def _crash_at(point: str, batch: int) -> Callable[[str], None]:
    """A fault hook that crashes the first time it reaches ``point`` of batch number ``batch``."""
    seen: Counter[str] = Counter()

    def fault(reached: str) -> None:
        seen[reached] += 1
        if reached == point and seen[reached] == batch:
            raise Crash(f"{point} of batch {batch}")

    return fault


def _crash(session_id: uuid.UUID, fault: Callable[[str], None]) -> None:
    with pytest.raises(Crash):
        execute_session(session_id=session_id, fault=fault)
    assert _status(session_id) == SessionStatus.RUNNING
    assert (
        MigrationControl.objects.filter(session_id=session_id, state=EntityState.RUNNING)
        .exclude(lease_owner="")
        .exists()
    )


def _resume_stale(session_id: uuid.UUID) -> MigrationStatus:
    """Resume a session whose process died: its leases are stale at once (timeout 0)."""
    with override_settings(DIFFMIG_LEASE_TIMEOUT=0):
        prepare_resume(session_id=session_id, user="test")
    return execute_session(session_id=session_id)


def _status(session_id: uuid.UUID) -> str:
    return MigrationStatus.objects.get(migration_session_id=session_id).overall_status


def _map_keys(entity: str) -> dict[uuid.UUID, str]:
    return dict(
        RecordMap.objects.filter(entity_type=entity).values_list(
            "destination_uuid", "legacy_key_text"
        )
    )


def _destination(target: sa.Engine) -> tuple[dict[str, dict], dict[str, dict[str, uuid.UUID]]]:
    """Per entity: key text → row (references as the parent's key text), and key → UUID."""
    rows: dict[str, dict] = {}
    uuids: dict[str, dict[str, uuid.UUID]] = {}
    keys = {entity: _map_keys(entity) for entity in ENTITIES}
    with target.connect() as conn:
        for entity in ENTITIES:
            rows[entity], uuids[entity] = {}, {}
            for row in conn.execute(sa.text(f"SELECT * FROM {entity}")).mappings():
                record = dict(row)
                record_uuid = record.pop("id")
                key = keys[entity].get(record_uuid, f"<not in the record map: {record_uuid}>")
                for column, parent in REFERENCES.get(entity, {}).items():
                    if record[column] is not None:
                        record[column] = keys[parent].get(record[column], "<dangling>")
                assert key not in rows[entity], f"{entity} {key} twice in the destination"
                rows[entity][key] = record
                uuids[entity][key] = record_uuid
    return rows, uuids


def _destination_count(target: sa.Engine, entity: str) -> int:
    with target.connect() as conn:
        return conn.exec_driver_sql(f"SELECT count(*) FROM {entity}").scalar_one()


def _assert_migrated(clinic: Clinic, session_id: uuid.UUID) -> None:
    """The destination, the record map and the counters are those of an uninterrupted run."""
    assert _status(session_id) == SessionStatus.COMPLETED
    expected = expected_destination(clinic.data)
    rows, uuids = _destination(clinic.target)
    for entity in ENTITIES:
        assert rows[entity] == expected[entity], entity
        assert uuids[entity] == {key: destination_uuid(entity, key) for key in expected[entity]}
        live = RecordMap.objects.filter(entity_type=entity, deleted_at__isnull=True)
        assert sorted(live.values_list("legacy_key_text", flat=True)) == sorted(expected[entity])
        assert dict(live.values_list("legacy_key_text", "destination_uuid")) == uuids[entity]
    _assert_counts_add_up(session_id)


def _assert_counts_add_up(session_id: uuid.UUID) -> None:
    """processed + failed + skipped = new + modified + deleted + retry, and one event each."""
    events = Counter(
        RecordEvent.objects.filter(session_id=session_id).values_list(
            "entity_type", "legacy_key_text"
        )
    )
    assert [key for key, n in events.items() if n > 1] == []
    for control in MigrationControl.objects.filter(session_id=session_id):
        changes = (
            control.new_count + control.modified_count + control.deleted_count + control.retry_count
        )
        done = control.processed_count + control.failed_count + control.skipped_count
        assert (control.entity_type, done) == (control.entity_type, changes)
        assert sum(n for (e, _), n in events.items() if e == control.entity_type) == changes
        assert control.state == EntityState.COMPLETED
    session = MigrationStatus.objects.get(migration_session_id=session_id)
    assert session.total_records_processed == sum(
        MigrationControl.objects.filter(session_id=session_id).values_list(
            "processed_count", flat=True
        )
    )
    assert session.total_records_remaining == 0


def _restored(session_id: uuid.UUID) -> list[str]:
    """The entities named by the session's `checkpoint_restore` log entries ('' for the session)."""
    return list(
        MigrationExecutionLog.objects.filter(
            session_id=session_id, operation_type=OperationType.CHECKPOINT_RESTORE
        ).values_list("entity_type", flat=True)
    )


def _open_quarantine() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {entity: set() for entity in ENTITIES}
    for entity, key in QuarantinedRecord.objects.filter(resolved_at__isnull=True).values_list(
        "entity_type", "legacy_key_text"
    ):
        found[entity].add(key)
    return found


# --------------------------------------------------------------------------- tests


def test_uninterrupted_baseline_writes_the_expected_rows_and_uuids(clinic):
    session_id = _launch()

    execute_session(session_id=session_id)

    _assert_migrated(clinic, session_id)
    assert _open_quarantine() == expected_failures(clinic.data)
    control = MigrationControl.objects.get(session_id=session_id, entity_type="patient")
    assert (control.new_count, control.processed_count, control.failed_count) == (
        len(clinic.data.patients),
        len(expected_destination(clinic.data)["patient"]),
        len(expected_failures(clinic.data)["patient"]),
    )
    assert _restored(session_id) == []


def test_crash_between_destination_and_control_commit_replays_the_batch_once(clinic):
    session_id = _launch()
    # Batch numbers: office 1, doctor 2, patient 3-8, appointment 9-23; 5 is patient's third.
    _crash(session_id, _crash_at(AFTER_DESTINATION, 5))

    # The destination holds batch 5; the control database does not know it.
    in_map = _map_keys("patient")
    assert _destination_count(clinic.target, "patient") > len(in_map) > 0
    with pytest.raises(StateTransitionError):
        prepare_resume(session_id=session_id)  # the lease is still fresh: refused, unchanged
    assert _status(session_id) == SessionStatus.RUNNING
    assert _map_keys("patient") == in_map

    session = _resume_stale(session_id)

    assert session.overall_status == SessionStatus.COMPLETED
    _assert_migrated(clinic, session_id)
    assert _open_quarantine() == expected_failures(clinic.data)
    assert RecordMap.objects.count() == sum(
        len(rows) for rows in expected_destination(clinic.data).values()
    )
    # The resume itself, and patient continuing after its last checkpoint (batch 4).
    assert _restored(session_id) == ["", "patient"]


def _batches(counts: dict[str, int]) -> int:
    return sum(-(-n // BATCH) for n in counts.values())


def _delete_source_rows(clinic: Clinic, rng: random.Random) -> dict[str, set[str]]:
    """Delete a few migrated patients with their appointments, and a few more appointments.

    The legacy data stays consistent (no appointment of a deleted patient is left). Returns
    the deleted keys per entity that had been migrated (those the run must delete).
    """
    migrated = expected_destination(clinic.data)
    patients = rng.sample(sorted(migrated["patient"]), 6)
    gone_patients = {clinic.data.patients[key]["code"] for key in patients}
    appointments = {
        key for key, row in clinic.data.appointments.items() if row["patient_code"] in gone_patients
    }
    others = sorted(set(migrated["appointment"]) - appointments)
    appointments |= set(rng.sample(others, 25))
    with legacy_transaction(clinic.legacy) as conn:
        delete_rows(conn, "appointment", [clinic.data.appointments[k] for k in appointments])
        delete_rows(conn, "patient", [clinic.data.patients[k] for k in patients])
    for key in appointments:
        del clinic.data.appointments[key]
    for key in patients:
        del clinic.data.patients[key]
    return {
        "office": set(),
        "doctor": set(),
        "patient": set(patients),
        "appointment": appointments & set(migrated["appointment"]),
    }


@pytest.mark.parametrize("seed", [11, 22, 33])
def test_crash_at_a_random_batch_of_upserts_and_of_deletes_loses_and_duplicates_nothing(
    clinic, seed
):
    rng = random.Random(seed)
    upserts = _batches({entity: len(rows) for entity, rows in clinic.data.rows.items()})
    session_id = _launch()
    _crash(
        session_id,
        _crash_at(rng.choice([AFTER_DESTINATION, AFTER_CONTROL]), 1 + rng.randrange(upserts)),
    )
    session = _resume_stale(session_id)

    assert session.overall_status == SessionStatus.COMPLETED
    _assert_migrated(clinic, session_id)
    assert _open_quarantine() == expected_failures(clinic.data)
    assert _restored(session_id) != []
    uuids_before = {entity: _map_keys(entity) for entity in ENTITIES}

    deleted = _delete_source_rows(clinic, rng)
    session_id = _launch()
    _crash(
        session_id,
        _crash_at(
            rng.choice([AFTER_DESTINATION, AFTER_CONTROL]),
            1 + rng.randrange(_batches({e: len(k) for e, k in deleted.items()})),
        ),
    )
    session = _resume_stale(session_id)

    assert session.overall_status == SessionStatus.COMPLETED
    _assert_migrated(clinic, session_id)
    for entity in ENTITIES:
        control = MigrationControl.objects.get(session_id=session_id, entity_type=entity)
        assert (control.new_count, control.modified_count, control.deleted_count) == (
            0,
            0,
            len(deleted[entity]),
        )
        assert control.processed_count == len(deleted[entity])
        gone = RecordMap.objects.filter(entity_type=entity, deleted_at__isnull=False)
        assert dict(gone.values_list("legacy_key_text", "destination_uuid")) == {
            key: destination_uuid(entity, key) for key in deleted[entity]
        }
        assert _map_keys(entity) == uuids_before[entity]  # no UUID changed, none added
    assert _restored(session_id) != []


def test_pause_after_the_first_batch_stops_cleanly_and_resume_completes(clinic):
    session_id = _launch()
    requested = []

    def pause_once(point: str) -> None:
        if point == AFTER_CONTROL and not requested:
            request_pause(session_id=session_id, user="test")
            requested.append(
                MigrationExecutionLog.objects.filter(session_id=session_id).latest("id").id
            )

    session = execute_session(session_id=session_id, fault=pause_once)

    assert session.overall_status == SessionStatus.PAUSED
    batches_after_request = MigrationExecutionLog.objects.filter(
        session_id=session_id,
        operation_type=OperationType.CHECKPOINT_SAVE,
        message__contains=": batch of ",
        id__gt=requested[0],
    ).count()
    assert batches_after_request <= 1
    written = sum(_destination_count(clinic.target, entity) for entity in ENTITIES)
    assert written == RecordMap.objects.count() <= 2 * BATCH  # nothing written unrecorded
    assert set(
        MigrationControl.objects.filter(session_id=session_id).values_list("state", flat=True)
    ) == {EntityState.PAUSED}

    prepare_resume(session_id=session_id, user="test")
    session = execute_session(session_id=session_id)

    assert session.overall_status == SessionStatus.COMPLETED
    _assert_migrated(clinic, session_id)
    assert _open_quarantine() == expected_failures(clinic.data)
    assert _restored(session_id) != []


def test_crash_in_a_differential_run_after_legacy_changes_finds_the_expected_changes(clinic):
    execute_session(session_id=_launch())
    before = clinic.data.snapshot()
    log = apply_changes(clinic.legacy, clinic.data, SEED)
    analysis = expected_analysis(before, log)
    batches = sum(
        _batches(
            {"upsert": len(a["new"] | a["modified"] | a["retry"]), "delete": len(a["deleted"])}
        )
        for a in analysis.values()
    )
    rng = random.Random(SEED)
    session_id = _launch()
    _crash(
        session_id,
        _crash_at(rng.choice([AFTER_DESTINATION, AFTER_CONTROL]), 1 + rng.randrange(batches)),
    )
    session = _resume_stale(session_id)

    assert session.overall_status == SessionStatus.COMPLETED
    _assert_migrated(clinic, session_id)
    for entity in ENTITIES:
        control = MigrationControl.objects.get(session_id=session_id, entity_type=entity)
        found = {
            "new": control.new_count,
            "modified": control.modified_count,
            "deleted": control.deleted_count,
            "unchanged": control.unchanged_count,
            "retry": control.retry_count,
        }
        assert found == {kind: len(keys) for kind, keys in analysis[entity].items()}, entity
    present = {entity: set(clinic.data.rows[entity]) for entity in ENTITIES}
    open_quarantine = _open_quarantine()
    assert {e: open_quarantine[e] & present[e] for e in ENTITIES} == expected_failures(clinic.data)
    assert _restored(session_id) != []
