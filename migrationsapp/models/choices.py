"""Enumerations shared by the models, with the seed's lower-case values."""

from django.db import models

from migrationsapp.engine import outcomes


class SessionStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EntityState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"


# A control row in one of these states holds its entity: a second launch must fail.
ACTIVE_ENTITY_STATES = (EntityState.PENDING, EntityState.RUNNING, EntityState.PAUSED)


class RunMode(models.TextChoices):
    BASELINE = "baseline"
    DIFFERENTIAL = "differential"


class CheckpointState(models.TextChoices):
    CREATED = "created"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    COMPLETED = "completed"


class OperationType(models.TextChoices):
    BASELINE_ANALYSIS = "baseline_analysis"
    DIFFERENTIAL_DETECTION = "differential_detection"
    RECORD_MIGRATION = "record_migration"
    VALIDATION = "validation"
    CHECKPOINT_SAVE = "checkpoint_save"
    CHECKPOINT_RESTORE = "checkpoint_restore"


class LogLevel(models.TextChoices):
    ERROR = "error"
    WARN = "warn"
    INFO = "info"
    DEBUG = "debug"


LOG_LEVEL_RANK = {LogLevel.DEBUG: 10, LogLevel.INFO: 20, LogLevel.WARN: 30, LogLevel.ERROR: 40}


def levels_at_or_above(level: str) -> list[str]:
    """The log levels a threshold lets through (``warn`` → warn and error)."""
    threshold = LOG_LEVEL_RANK[level]
    return [name for name, rank in LOG_LEVEL_RANK.items() if rank >= threshold]


class ChangeKind(models.TextChoices):
    NEW = "new"
    MODIFIED = "modified"
    DELETED = "deleted"
    RETRY = "retry"


class RecordAction(models.TextChoices):
    """A record event's action: the engine's ``RecordAction``, as choices."""

    CREATED = outcomes.RecordAction.CREATED.value
    UPDATED = outcomes.RecordAction.UPDATED.value
    DELETED = outcomes.RecordAction.DELETED.value
    FAILED = outcomes.RecordAction.FAILED.value
    SKIPPED = outcomes.RecordAction.SKIPPED.value


class Detection(models.TextChoices):
    HASH = "hash"
    TIMESTAMP = "timestamp"
    HYBRID = "hybrid"


class DeletePolicy(models.TextChoices):
    HARD = "hard"
    SOFT = "soft"
    REPORT = "report"


class ValidationRuleType(models.TextChoices):
    REQUIRED = "required"
    UNIQUE = "unique"
    FORMAT = "format"
    RANGE = "range"


def check_in(field: str, choices: type[models.TextChoices]) -> models.Q:
    """A CHECK condition that keeps a column to its enumeration's values."""
    return models.Q(**{f"{field}__in": choices.values})


class AuditAction(models.TextChoices):
    """What an execution-log entry records, as a namespaced code (``MigrationExecutionLog.action``).

    The seed's ``operation_type`` says which part of the run wrote an entry; the action says
    what happened and ``actor`` who did it, so an auditor can filter "every pause request"
    or "everything alice did". The column has no CHECK: a code added here needs no migration,
    and entries written before the column existed keep "".
    """

    # A session, as an operator or a schedule drives it.
    SESSION_LAUNCHED = "session.launched"
    SESSION_PAUSE_REQUESTED = "session.pause_requested"
    SESSION_CANCEL_REQUESTED = "session.cancel_requested"
    SESSION_RESUMED = "session.resumed"
    SESSION_PAUSED = "session.paused"
    SESSION_CANCELLED = "session.cancelled"
    SESSION_FINISHED = "session.finished"
    SESSION_NEVER_STARTED = "session.never_started"
    SESSION_DISPATCH_FAILED = "session.dispatch_failed"
    # An entity of a running session.
    ENTITY_ANALYZED = "entity.analyzed"
    ENTITY_ANALYSIS_NOTE = "entity.analysis_note"
    ENTITY_CONTINUED = "entity.continued"
    ENTITY_PARTITIONED = "entity.partitioned"
    ENTITY_BATCH_COMMITTED = "entity.batch_committed"
    ENTITY_LINKS_SET = "entity.links_set"
    ENTITY_CURSOR_ADVANCED = "entity.cursor_advanced"
    ENTITY_DELETES_REFUSED = "entity.deletes_refused"
    ENTITY_FAILED = "entity.failed"
    # A unit of work on the RQ workers.
    UNIT_FAILED = "unit.failed"
    UNIT_REQUEUED = "unit.requeued"
    UNIT_TAKEN_OVER = "unit.taken_over"
    # Records.
    RECORD_FAILED = "record.failed"
    QUARANTINE_RETRIED = "quarantine.retried"
    QUARANTINE_RESOLVED = "quarantine.resolved"
    QUARANTINE_GONE = "quarantine.gone"
    # Verification, schedules, alerts.
    VERIFY_FINISHED = "verify.finished"
    SCHEDULE_FIRED = "schedule.fired"
    SCHEDULE_SKIPPED = "schedule.skipped"
    SCHEDULE_REFUSED = "schedule.refused"
    ALERT_NOT_SENT = "alert.not_sent"
    # Mappings and connections, changed by an administrator (no session).
    MAPPING_IMPORTED = "mapping.imported"
    MAPPING_ACTIVATED = "mapping.activated"
    MAPPING_DEACTIVATED = "mapping.deactivated"
    CONNECTION_CHANGED = "connection.changed"
    ENTITY_COMPLETED = "entity.completed"
    SCHEDULE_CHANGED = "schedule.changed"
