"""Resumable state of an entity's run (the seed's MigrationCheckpoint).

Seed rule dropped on purpose: ``last_processed_id`` "must exist in source" — a checkpoint
may point at a record that has since been deleted, which is exactly what a differential run
must cope with.
"""

from __future__ import annotations

import uuid

from django.db import models

from .choices import CheckpointState, check_in


class MigrationCheckpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    entity_type = models.CharField(max_length=100)
    migration_run = models.ForeignKey(
        "migrationsapp.MigrationControl",
        on_delete=models.CASCADE,
        to_field="run_id",
        db_column="migration_run_id",
        related_name="checkpoints",
    )
    # A unit of the run: its phase ("upsert", "delete", "link"), or a partition of the
    # upserts ("upsert:<i>", its key range in checkpoint_data: lo, hi); "" is the whole entity.
    unit = models.CharField(max_length=64, default="", blank=True)
    state = models.CharField(
        max_length=16, choices=CheckpointState.choices, default=CheckpointState.CREATED
    )
    last_processed_id = models.TextField(blank=True, default="")
    batch_position = models.BigIntegerField(default=0)
    records_processed = models.BigIntegerField(default=0)
    records_remaining = models.BigIntegerField(default=0)
    checkpoint_data = models.JSONField(default=dict, blank=True)
    # The lease of a partition ("upsert:<i>", a key range of a large entity's upserts): the
    # worker that runs it now, by compare-and-set as the entity's lease (services.leases).
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_heartbeat = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "migration_checkpoints"
        ordering = ["entity_type", "unit"]
        indexes = [
            models.Index(fields=["entity_type", "migration_run"], name="checkpoint_entity_run_idx"),
            models.Index(fields=["last_processed_id"], name="checkpoint_last_id_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["migration_run", "unit"], name="checkpoint_run_unit_uniq"
            ),
            models.CheckConstraint(
                condition=models.Q(records_processed__gte=0), name="checkpoint_processed_nonneg"
            ),
            models.CheckConstraint(
                condition=models.Q(records_remaining__gte=0), name="checkpoint_remaining_nonneg"
            ),
            models.CheckConstraint(
                condition=models.Q(batch_position__gte=0), name="checkpoint_position_nonneg"
            ),
            models.CheckConstraint(
                condition=check_in("state", CheckpointState), name="checkpoint_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"checkpoint {self.entity_type} {self.unit or 'all'} at {self.batch_position}"
