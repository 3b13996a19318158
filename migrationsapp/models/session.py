"""A migration session (the seed's MigrationStatus) and its per-entity control rows.

Seed rules dropped on purpose: ``estimated_completion`` "in the future while running" (an
estimate may lag the clock) and strict ``processed + remaining`` consistency (a live source
changes under a run); the counters are kept by the services instead. The session status adds
``cancelled`` to the seed's five values. Status changes go through
``services.state.transition_session`` only (compare-and-set).
"""

from __future__ import annotations

import uuid

from django.db import models

from migrationsapp.engine.outcomes import Phase

from .choices import ACTIVE_ENTITY_STATES, EntityState, RunMode, SessionStatus, check_in


class MigrationStatus(models.Model):
    """One migration session across its entities."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    migration_session_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    overall_status = models.CharField(
        max_length=16, choices=SessionStatus.choices, default=SessionStatus.PENDING
    )
    entities_pending = models.JSONField(default=list, blank=True)
    entities_running = models.JSONField(default=list, blank=True)
    entities_completed = models.JSONField(default=list, blank=True)
    entities_failed = models.JSONField(default=list, blank=True)
    total_records_processed = models.BigIntegerField(default=0)
    total_records_remaining = models.BigIntegerField(default=0)
    estimated_completion = models.DateTimeField(null=True, blank=True)
    error_summary = models.JSONField(default=dict, blank=True)
    performance_metrics = models.JSONField(default=dict, blank=True)
    # What the operator asked for: entities, baseline, dry run, batch size, delete share.
    options = models.JSONField(default=dict, blank=True)
    pause_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    launched_by = models.CharField(max_length=150, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "migration_status_tracking"
        verbose_name = "migration session"
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["migration_session_id", "overall_status"],
                name="status_session_status_idx",
            ),
            models.Index(fields=["-created_at"], name="status_created_idx"),
            # The history's keyset pages: (created_at, id) older than the last row shown.
            models.Index(fields=["-created_at", "-id"], name="status_created_id_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=check_in("overall_status", SessionStatus), name="status_overall_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(total_records_processed__gte=0),
                name="status_processed_nonneg",
            ),
            models.CheckConstraint(
                condition=models.Q(total_records_remaining__gte=0),
                name="status_remaining_nonneg",
            ),
        ]
        permissions = [
            ("launch_migration", "Can launch a migration run"),
            ("control_migration", "Can pause, resume and cancel a migration run"),
        ]

    def __str__(self) -> str:
        return f"session {self.migration_session_id} ({self.overall_status})"

    @property
    def is_finished(self) -> bool:
        return self.overall_status in {
            SessionStatus.COMPLETED,
            SessionStatus.FAILED,
            SessionStatus.CANCELLED,
        }


class MigrationControl(models.Model):
    """One entity's run within a session: its state, mode, lease and counts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(
        MigrationStatus,
        on_delete=models.CASCADE,
        to_field="migration_session_id",
        db_column="migration_session_id",
        related_name="controls",
    )
    entity_type = models.CharField(max_length=100)
    mode = models.CharField(max_length=16, choices=RunMode.choices, default=RunMode.DIFFERENTIAL)
    state = models.CharField(
        max_length=16, choices=EntityState.choices, default=EntityState.PENDING
    )
    # The dependency order of this entity within the session (0 first).
    position = models.PositiveIntegerField(default=0)
    depends_on = models.JSONField(default=list, blank=True)
    phase = models.CharField(max_length=16, default=Phase.ANALYZE)
    mapping_version = models.PositiveIntegerField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_heartbeat = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    analysis = models.ForeignKey(
        "migrationsapp.DifferentialAnalysisResult",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="controls",
    )
    new_count = models.BigIntegerField(default=0)
    modified_count = models.BigIntegerField(default=0)
    deleted_count = models.BigIntegerField(default=0)
    unchanged_count = models.BigIntegerField(default=0)
    retry_count = models.BigIntegerField(default=0)
    processed_count = models.BigIntegerField(default=0)
    failed_count = models.BigIntegerField(default=0)
    skipped_count = models.BigIntegerField(default=0)
    message = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "migration_control"
        verbose_name = "entity run"
        ordering = ["session", "position"]
        constraints = [
            # Two active runs of one entity are impossible at the database, not by check-then-act.
            models.UniqueConstraint(
                fields=["entity_type"],
                condition=models.Q(state__in=ACTIVE_ENTITY_STATES),
                name="control_one_active_run_per_entity",
            ),
            models.UniqueConstraint(
                fields=["session", "entity_type"], name="control_entity_once_per_session"
            ),
            models.CheckConstraint(
                condition=check_in("state", EntityState), name="control_state_valid"
            ),
            models.CheckConstraint(condition=check_in("mode", RunMode), name="control_mode_valid"),
            *[
                models.CheckConstraint(
                    condition=models.Q(**{f"{name}__gte": 0}), name=f"control_{name}_nonneg"
                )
                for name in (
                    "new_count",
                    "modified_count",
                    "deleted_count",
                    "unchanged_count",
                    "retry_count",
                    "processed_count",
                    "failed_count",
                    "skipped_count",
                )
            ],
        ]
        indexes = [models.Index(fields=["state", "lease_heartbeat"], name="control_lease_idx")]

    def __str__(self) -> str:
        return f"{self.entity_type} in {self.session_id} ({self.state})"
