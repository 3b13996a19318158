"""factory-boy factories: one per model of migrationsapp, plus users.

Sequences keep what the database holds unique: entity names (``entity1``, ``entity2`` …, so
that the "one active run / one active mapping per entity" constraints never clash by
accident), versions (the entity's next one), key texts. Connections are stored the way the
service stores them: the password encrypted.
"""

from __future__ import annotations

import datetime as dt
import uuid

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db.models import Max
from django.utils import timezone
from factory.django import DjangoModelFactory

from migrationsapp.engine.ids import destination_uuid, encode_key
from migrationsapp.models import (
    AnalysisChange,
    Connection,
    DifferentialAnalysisResult,
    FieldMapping,
    MigrationCheckpoint,
    MigrationControl,
    MigrationExecutionLog,
    MigrationStatus,
    QuarantinedRecord,
    RecordEvent,
    RecordMap,
    RunSchedule,
    SchemaMappingDefinition,
    TransformationFunction,
    ValidationRule,
    VerifyEntityReport,
    VerifyRun,
)
from migrationsapp.models.choices import (
    ChangeKind,
    CheckpointState,
    EntityState,
    LogLevel,
    OperationType,
    RecordAction,
    SessionStatus,
    ValidationRuleType,
)
from migrationsapp.services.connections import save_connection
from migrationsapp.services.secrets import encrypt_secret

USER_PASSWORD = "correct-horse-battery-staple"

entity_names = factory.Sequence(lambda n: f"entity{n}")


class UserFactory(DjangoModelFactory[AbstractUser]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.test")
    password = factory.django.Password(USER_PASSWORD)
    is_staff = True


class MigrationStatusFactory(DjangoModelFactory[MigrationStatus]):
    class Meta:
        model = MigrationStatus

    overall_status = SessionStatus.PENDING
    launched_by = "operator"


class MigrationControlFactory(DjangoModelFactory[MigrationControl]):
    class Meta:
        model = MigrationControl

    session = factory.SubFactory(MigrationStatusFactory)
    entity_type = entity_names
    state = EntityState.PENDING


class MigrationCheckpointFactory(DjangoModelFactory[MigrationCheckpoint]):
    class Meta:
        model = MigrationCheckpoint

    migration_run = factory.SubFactory(MigrationControlFactory)
    entity_type = factory.SelfAttribute("migration_run.entity_type")
    unit = factory.Sequence(lambda n: f"unit{n}")
    state = CheckpointState.ACTIVE
    last_processed_id = factory.Sequence(str)
    batch_position = 1


class DifferentialAnalysisResultFactory(DjangoModelFactory[DifferentialAnalysisResult]):
    class Meta:
        model = DifferentialAnalysisResult

    entity_type = entity_names
    analysis_timestamp = factory.LazyFunction(timezone.now)
    mapping_version = 1


class AnalysisChangeFactory(DjangoModelFactory[AnalysisChange]):
    class Meta:
        model = AnalysisChange

    analysis = factory.SubFactory(DifferentialAnalysisResultFactory)
    kind = ChangeKind.NEW
    legacy_key = factory.Sequence(lambda n: [n])
    legacy_key_text = factory.LazyAttribute(lambda change: encode_key(change.legacy_key))
    content_hash = factory.Sequence(lambda n: f"{n:064x}")


class MigrationExecutionLogFactory(DjangoModelFactory[MigrationExecutionLog]):
    class Meta:
        model = MigrationExecutionLog

    session = factory.SubFactory(MigrationStatusFactory)
    entity_type = entity_names
    operation_type = OperationType.RECORD_MIGRATION
    record_id = factory.Sequence(str)
    log_level = LogLevel.INFO
    message = factory.Sequence(lambda n: f"batch {n} written")


class RecordMapFactory(DjangoModelFactory[RecordMap]):
    class Meta:
        model = RecordMap

    entity_type = entity_names
    legacy_key = factory.Sequence(lambda n: [n])
    legacy_key_text = factory.LazyAttribute(lambda row: encode_key(row.legacy_key))
    destination_uuid = factory.LazyAttribute(
        lambda row: destination_uuid(row.entity_type, row.legacy_key_text)
    )
    content_hash = factory.Sequence(lambda n: f"{n:064x}")
    mapping_version = 1


class RecordEventFactory(DjangoModelFactory[RecordEvent]):
    class Meta:
        model = RecordEvent

    entity_type = entity_names
    legacy_key_text = factory.Sequence(str)
    session = factory.SubFactory(MigrationStatusFactory)
    action = RecordAction.CREATED
    destination_uuid = factory.LazyAttribute(
        lambda event: destination_uuid(event.entity_type, event.legacy_key_text)
    )
    mapping_version = 1


class QuarantinedRecordFactory(DjangoModelFactory[QuarantinedRecord]):
    class Meta:
        model = QuarantinedRecord

    entity_type = entity_names
    legacy_key = factory.Sequence(lambda n: [n])
    legacy_key_text = factory.LazyAttribute(lambda row: encode_key(row.legacy_key))
    rule = "required"
    field = "email"
    value = ""
    reason = "email is required"
    mapping_version = 1


def _next_version(entity_type: str) -> int:
    highest = SchemaMappingDefinition.objects.filter(entity_type=entity_type).aggregate(
        highest=Max("version")
    )["highest"]
    return (highest or 0) + 1


class SchemaMappingDefinitionFactory(DjangoModelFactory[SchemaMappingDefinition]):
    """A draft by default; ``SchemaMappingDefinitionFactory(active=True)`` for an active one."""

    class Meta:
        model = SchemaMappingDefinition

    class Params:
        active = factory.Trait(
            is_active=True,
            activated_at=factory.LazyFunction(lambda: timezone.now() - dt.timedelta(hours=1)),
        )

    entity_type = entity_names
    source_table = factory.LazyAttribute(lambda d: f"legacy_{d.entity_type}s")
    source_key = factory.LazyFunction(lambda: ["id"])
    destination_table = factory.SelfAttribute("entity_type")
    destination_key = "id"
    version = factory.LazyAttribute(lambda d: _next_version(d.entity_type))
    is_active = False
    created_by = "editor"


class FieldMappingFactory(DjangoModelFactory[FieldMapping]):
    class Meta:
        model = FieldMapping

    definition = factory.SubFactory(SchemaMappingDefinitionFactory)
    position = factory.Sequence(int)
    source_field = factory.Sequence(lambda n: f"column{n}")
    destination_field = factory.Sequence(lambda n: f"field{n}")
    transformation = "trim"


class ValidationRuleFactory(DjangoModelFactory[ValidationRule]):
    class Meta:
        model = ValidationRule

    definition = factory.SubFactory(SchemaMappingDefinitionFactory)
    position = factory.Sequence(int)
    field_name = factory.Sequence(lambda n: f"field{n}")
    rule_type = ValidationRuleType.REQUIRED
    rule_parameters = factory.LazyFunction(dict)


class TransformationFunctionFactory(DjangoModelFactory[TransformationFunction]):
    class Meta:
        model = TransformationFunction

    definition = factory.SubFactory(SchemaMappingDefinitionFactory)
    name = factory.Sequence(lambda n: f"function{n}")
    function_body = "title(trim(first)) + ' ' + title(trim(last))"


class ConnectionFactory(DjangoModelFactory[Connection]):
    """A connection whose ``password`` is stored as ``save_connection`` stores it: encrypted."""

    class Meta:
        model = Connection

    name = factory.Sequence(lambda n: f"conn{n}")
    url = factory.LazyAttribute(lambda c: f"postgresql://diffmig@127.0.0.1:5432/{c.name}")
    timezone = "UTC"
    schema = ""
    password = factory.Sequence(lambda n: f"s3cret-{uuid.UUID(int=n).hex[:12]}")

    @classmethod
    def _build(cls, model_class, *args, password: str = "", **kwargs):
        return model_class(*args, password_encrypted=encrypt_secret(password), **kwargs)

    @classmethod
    def _create(cls, model_class, *args, password: str = "", **kwargs):
        return save_connection(
            name=kwargs["name"],
            url=kwargs["url"],
            timezone=kwargs.get("timezone", "UTC"),
            schema=kwargs.get("schema", ""),
            password=password,
        )


class VerifyRunFactory(DjangoModelFactory[VerifyRun]):
    class Meta:
        model = VerifyRun

    launched_by = "operator"


class VerifyEntityReportFactory(DjangoModelFactory[VerifyEntityReport]):
    class Meta:
        model = VerifyEntityReport

    run = factory.SubFactory(VerifyRunFactory)
    entity_type = factory.Sequence(lambda n: f"entity{n}")
    equal = True
    compared = 10


class RunScheduleFactory(DjangoModelFactory[RunSchedule]):
    class Meta:
        model = RunSchedule

    name = factory.Sequence(lambda n: f"nightly{n}")
    interval_hours = 24
    created_by = "operator"
