"""Enumerations shared by the models, with the seed's lower-case values."""

from django.db import models


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
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    FAILED = "failed"
    SKIPPED = "skipped"


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
