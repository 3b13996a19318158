"""`verify` in processes of its own (``DIFFMIG_LOCAL_PROCESSES`` above 1): the report must be
exactly the one-process report, differences included, in dependency order."""

from __future__ import annotations

import pytest

from migrationsapp.demo.clinic import ENTITIES
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.models import MigrationExecutionLog
from migrationsapp.models.choices import AuditAction
from migrationsapp.services import verify_processes
from migrationsapp.services.verify import verify_entities
from tests.integration.test_verify import clinic, migrated, uuid_of  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def apart(settings, monkeypatch) -> list[str]:
    """Processes from the first record on; the entities they verified, in any order."""
    settings.DIFFMIG_LOCAL_PROCESSES = 2
    monkeypatch.setattr(verify_processes, "FROM_RECORDS", 0)
    verified: list[str] = []
    verify_apart = verify_processes.verify_apart

    def spy(names, **kwargs):
        results = verify_apart(names, **kwargs)
        verified.extend(results)
        return results

    monkeypatch.setattr(verify_processes, "verify_apart", spy)
    return verified


def test_verify_in_processes_reports_exactly_what_one_process_reports(
    migrated,  # noqa: F811
    apart,
    settings,
):
    doctor = next(iter(migrated.expected("doctor")))
    appointments = list(migrated.expected("appointment"))[:2]
    migrated.target_sql(
        "UPDATE doctor SET salary = 1.5 WHERE id = :id", id=uuid_of("doctor", doctor)
    )
    migrated.target_sql(
        "DELETE FROM appointment WHERE id = :id", id=uuid_of("appointment", appointments[0])
    )
    migrated.target_sql(
        "UPDATE appointment SET starts_at = starts_at + interval '1 hour' WHERE id = :id",
        id=uuid_of("appointment", appointments[1]),
    )

    in_processes = verify_entities(cap=5, batch_size=7)
    assert sorted(apart) == sorted(ENTITIES)  # every entity verified in a process
    settings.DIFFMIG_LOCAL_PROCESSES = 1
    here = verify_entities(cap=5, batch_size=7)

    assert [e.entity for e in in_processes.entities] == list(ENTITIES)
    assert in_processes.as_dict() == here.as_dict()
    assert not in_processes.equal
    found = in_processes.as_dict()["entities"]
    assert found["appointment"]["missing"] == [appointments[0]]
    assert [d["field"] for d in found["appointment"]["different"]] == ["starts_at"]
    # One log entry per entity and verify, in dependency order.
    logged = MigrationExecutionLog.objects.filter(action=AuditAction.VERIFY_FINISHED)
    assert [e.entity_type for e in logged.order_by("timestamp", "pk")] == [*ENTITIES, *ENTITIES]


def test_an_entity_a_process_cannot_verify_is_verified_here_and_its_error_reported(
    migrated,  # noqa: F811
    apart,
):
    migrated.target_sql("ALTER TABLE appointment RENAME TO appointment_gone")

    with pytest.raises(ConfigurationError, match="has no table 'appointment'"):
        verify_entities()

    assert sorted(apart) == ["doctor", "office", "patient"]
    # What was verified before the error is logged.
    logged = MigrationExecutionLog.objects.filter(action=AuditAction.VERIFY_FINISHED)
    assert sorted(logged.values_list("entity_type", flat=True)) == ["doctor", "office", "patient"]
