"""The execution log (the seed's MigrationExecutionLog).

The primary key is a growing integer rather than the seed's UUID: the live log panel and
``logs --follow`` fetch "only rows after the last id I have", which needs an ordered key on
a table that grows by millions of rows. Seed rules dropped on purpose: ``record_id`` "must
exist in source" (a deleted record is logged too).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .choices import LogLevel, OperationType, check_in


class MigrationExecutionLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(
        "migrationsapp.MigrationStatus",
        on_delete=models.CASCADE,
        to_field="migration_session_id",
        db_column="migration_session_id",
        null=True,
        blank=True,
        related_name="logs",
    )
    entity_type = models.CharField(max_length=100, blank=True, default="")
    operation_type = models.CharField(max_length=32, choices=OperationType.choices)
    # What happened, as a namespaced code (choices.AuditAction), and who made it happen:
    # a user name, "cli", "schedule", "worker"; "" where no one did (the run itself).
    action = models.CharField(max_length=48, blank=True, default="")
    actor = models.CharField(max_length=150, blank=True, default="")
    # NULL (not "") says the entry is about no record in particular, as in the seed.
    record_id = models.TextField(null=True, blank=True)  # noqa: DJ001
    log_level = models.CharField(max_length=8, choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()
    error_details = models.JSONField(null=True, blank=True)
    performance_data = models.JSONField(null=True, blank=True)
    context_data = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "migration_execution_logs"
        ordering = ["id"]
        indexes = [
            models.Index(fields=["session", "timestamp"], name="log_session_time_idx"),
            models.Index(fields=["entity_type", "log_level"], name="log_entity_level_idx"),
            models.Index(fields=["timestamp"], name="log_time_idx"),
            # "This session's entries after the last id shown": the live panel, `logs --follow`.
            models.Index(fields=["session", "id"], name="log_session_id_idx"),
            # The record lookup and the log browser's record filter.
            models.Index(fields=["record_id"], name="log_record_idx"),
            # The log browser's action filter ("every pause request").
            models.Index(fields=["action", "id"], name="log_action_id_idx"),
            # ... and its actor filter ("everything alice did").
            models.Index(fields=["actor", "id"], name="log_actor_id_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=check_in("log_level", LogLevel), name="log_level_valid"
            ),
            models.CheckConstraint(
                condition=check_in("operation_type", OperationType), name="log_operation_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.log_level}] {self.operation_type} {self.entity_type}: {self.message[:60]}"
