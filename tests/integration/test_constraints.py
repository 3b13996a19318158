"""Every CHECK and unique rule of the migration tables holds at the database.

Each test breaks one rule with a direct insert or update and asserts the database refuses
it. They run on PostgreSQL and on the embedded SQLite default alike.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from migrationsapp.models import (
    AnalysisChange,
    DifferentialAnalysisResult,
    MigrationCheckpoint,
    MigrationControl,
    MigrationExecutionLog,
    MigrationStatus,
    QuarantinedRecord,
    RecordEvent,
    RecordMap,
    SchemaMappingDefinition,
    ValidationRule,
)

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def refused(fn) -> bool:
    try:
        with transaction.atomic():
            fn()
    except IntegrityError:
        return True
    return False


@pytest.fixture
def session() -> MigrationStatus:
    return MigrationStatus.objects.create()


@pytest.fixture
def control(session) -> MigrationControl:
    return MigrationControl.objects.create(session=session, entity_type="office")


def test_session_status_outside_enum_is_refused(session):
    assert refused(
        lambda: MigrationStatus.objects.filter(pk=session.pk).update(overall_status="RUNNING")
    )
    assert refused(lambda: MigrationStatus.objects.create(overall_status="done"))


@pytest.mark.parametrize("field", ["total_records_processed", "total_records_remaining"])
def test_session_negative_totals_are_refused(session, field):
    assert refused(lambda: MigrationStatus.objects.filter(pk=session.pk).update(**{field: -1}))


def test_session_cancelled_is_a_valid_status(session):
    MigrationStatus.objects.filter(pk=session.pk).update(overall_status="cancelled")
    session.refresh_from_db()
    assert session.overall_status == "cancelled"


def test_second_active_run_of_an_entity_is_refused(control):
    other = MigrationStatus.objects.create()
    assert refused(lambda: MigrationControl.objects.create(session=other, entity_type="office"))
    assert MigrationControl.objects.filter(entity_type="office").count() == 1


@pytest.mark.parametrize("state", ["running", "paused"])
def test_active_states_hold_the_entity(control, state):
    MigrationControl.objects.filter(pk=control.pk).update(state=state)
    other = MigrationStatus.objects.create()
    assert refused(lambda: MigrationControl.objects.create(session=other, entity_type="office"))


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled", "blocked"])
def test_finished_run_frees_the_entity(control, state):
    MigrationControl.objects.filter(pk=control.pk).update(state=state)
    other = MigrationStatus.objects.create()
    MigrationControl.objects.create(session=other, entity_type="office")
    assert MigrationControl.objects.filter(entity_type="office").count() == 2


def test_entity_appears_once_per_session(control):
    MigrationControl.objects.filter(pk=control.pk).update(state="completed")
    assert refused(
        lambda: MigrationControl.objects.create(session=control.session, entity_type="office")
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("state", "done"), ("mode", "full"), ("processed_count", -1), ("failed_count", -5)],
)
def test_control_rules_are_enforced(control, field, value):
    assert refused(lambda: MigrationControl.objects.filter(pk=control.pk).update(**{field: value}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("records_processed", -1),
        ("records_remaining", -1),
        ("batch_position", -1),
        ("state", "paused"),
    ],
)
def test_checkpoint_rules_are_enforced(control, field, value):
    checkpoint = MigrationCheckpoint.objects.create(
        entity_type="office", migration_run=control, records_processed=0
    )
    assert refused(
        lambda: MigrationCheckpoint.objects.filter(pk=checkpoint.pk).update(**{field: value})
    )


def test_checkpoint_unit_is_unique_per_run(control):
    MigrationCheckpoint.objects.create(entity_type="office", migration_run=control, unit="upsert")
    assert refused(
        lambda: MigrationCheckpoint.objects.create(
            entity_type="office", migration_run=control, unit="upsert"
        )
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("source_record_count", -1), ("new_count", -1), ("detection", "guess")],
)
def test_analysis_rules_are_enforced(field, value):
    analysis = DifferentialAnalysisResult.objects.create(
        entity_type="office", analysis_timestamp=timezone.now()
    )
    assert refused(
        lambda: DifferentialAnalysisResult.objects.filter(pk=analysis.pk).update(**{field: value})
    )


def test_change_set_key_once_and_kind_valid():
    analysis = DifferentialAnalysisResult.objects.create(
        entity_type="office", analysis_timestamp=timezone.now()
    )
    AnalysisChange.objects.create(
        analysis=analysis, kind="new", legacy_key=[1], legacy_key_text="1"
    )
    assert refused(
        lambda: AnalysisChange.objects.create(
            analysis=analysis, kind="modified", legacy_key=[1], legacy_key_text="1"
        )
    )
    assert refused(
        lambda: AnalysisChange.objects.create(
            analysis=analysis, kind="changed", legacy_key=[2], legacy_key_text="2"
        )
    )


@pytest.mark.parametrize(("field", "value"), [("log_level", "WARNING"), ("operation_type", "copy")])
def test_log_enums_are_enforced(session, field, value):
    log = MigrationExecutionLog.objects.create(
        session=session, operation_type="record_migration", message="x"
    )
    assert refused(lambda: MigrationExecutionLog.objects.filter(pk=log.pk).update(**{field: value}))


def test_record_map_key_is_unique_per_entity_and_binary():
    RecordMap.objects.create(
        entity_type="office",
        legacy_key=["abc"],
        legacy_key_text="abc",
        destination_uuid=uuid.uuid4(),
    )
    assert refused(
        lambda: RecordMap.objects.create(
            entity_type="office",
            legacy_key=["abc"],
            legacy_key_text="abc",
            destination_uuid=uuid.uuid4(),
        )
    )
    # Keys differing only in case or trailing space are different records.
    for text in ("ABC", "abc "):
        RecordMap.objects.create(
            entity_type="office",
            legacy_key=[text],
            legacy_key_text=text,
            destination_uuid=uuid.uuid4(),
        )
    assert RecordMap.objects.filter(entity_type="office").count() == 3


def test_record_event_action_is_enforced(session):
    assert refused(
        lambda: RecordEvent.objects.create(
            entity_type="office", legacy_key_text="1", session=session, action="moved"
        )
    )


def test_one_open_quarantine_entry_per_record():
    QuarantinedRecord.objects.create(
        entity_type="doctor", legacy_key=[1], legacy_key_text="1", rule="format", reason="bad"
    )
    assert refused(
        lambda: QuarantinedRecord.objects.create(
            entity_type="doctor", legacy_key=[1], legacy_key_text="1", rule="format", reason="bad"
        )
    )
    QuarantinedRecord.objects.filter(legacy_key_text="1").update(resolved_at=timezone.now())
    QuarantinedRecord.objects.create(
        entity_type="doctor", legacy_key=[1], legacy_key_text="1", rule="format", reason="again"
    )
    assert QuarantinedRecord.objects.filter(legacy_key_text="1").count() == 2


def _definition(**overrides) -> SchemaMappingDefinition:
    values = {
        "entity_type": "office",
        "source_table": "offices",
        "source_key": ["id"],
        "destination_table": "office",
        "version": 1,
    }
    values.update(overrides)
    return SchemaMappingDefinition.objects.create(**values)


def test_one_active_mapping_per_entity():
    _definition(version=1, is_active=True)
    assert refused(lambda: _definition(version=2, is_active=True))
    _definition(version=2, is_active=False)
    assert SchemaMappingDefinition.objects.filter(entity_type="office").count() == 2


def test_mapping_version_unique_per_entity_and_positive():
    _definition(version=1)
    assert refused(lambda: _definition(version=1))
    assert refused(lambda: _definition(version=0))
    _definition(entity_type="doctor", version=1)


@pytest.mark.parametrize(
    ("field", "value"),
    [("detection", "magic"), ("deletes", "shred"), ("max_delete_share", 1.5)],
)
def test_mapping_enums_and_ranges_are_enforced(field, value):
    definition = _definition()
    assert refused(
        lambda: SchemaMappingDefinition.objects.filter(pk=definition.pk).update(**{field: value})
    )


def test_validation_rule_type_is_enforced():
    definition = _definition()
    assert refused(
        lambda: ValidationRule.objects.create(
            definition=definition, field_name="email", rule_type="regex"
        )
    )


@pytest.mark.services
def test_seed_tables_and_indexes_exist_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("introspects PostgreSQL's catalogue")
    seed_tables = {
        "migration_checkpoints",
        "differential_analysis_results",
        "migration_status_tracking",
        "schema_mapping_definitions",
        "migration_execution_logs",
        "migration_control",
        "migration_mappings",
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        tables = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            """
            SELECT t.relname, array_agg(a.attname ORDER BY k.ord)
            FROM pg_index i
            JOIN pg_class t ON t.oid = i.indrelid
            JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
            JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
            GROUP BY i.indexrelid, t.relname
            """
        )
        indexes = {(table, tuple(columns)) for table, columns in cursor.fetchall()}
    assert seed_tables <= tables
    expected = {
        ("migration_checkpoints", ("entity_type", "migration_run_id")),
        ("migration_checkpoints", ("last_processed_id",)),
        ("differential_analysis_results", ("entity_type", "analysis_timestamp")),
        ("differential_analysis_results", ("last_migration_timestamp",)),
        ("migration_execution_logs", ("migration_session_id", "timestamp")),
        ("migration_execution_logs", ("entity_type", "log_level")),
        ("migration_status_tracking", ("migration_session_id", "overall_status")),
        ("schema_mapping_definitions", ("entity_type", "is_active", "version")),
    }
    assert expected <= indexes
