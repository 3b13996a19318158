"""Differential analysis results and their change sets.

The seed's id arrays (``new_records`` …) are kept for display only and capped at
``DISPLAY_CAP`` keys each (``truncated`` says when): the full change set lives in the child
table ``differential_analysis_changes``, one row per key, which the executor reads in
batches. Seed rules dropped on purpose: "< 1M changes" (the child table has no such limit),
ids "must exist in source" (deleted ones cannot), and
``analysis_timestamp > last_migration_timestamp`` at a baseline (there is no previous run).

A hash analysis reads its source in key slices, each committed with its checkpoint
(``slices_done``, ``rows_seen``, ``slice_checkpoint``) while its ``status`` is ``reading``;
it becomes ``complete`` in the transaction that writes its change set, and a complete
analysis never resumes (``services/analysis_slices.py``).
"""

from __future__ import annotations

import uuid

from django.db import models

from .choices import ChangeKind, Detection, check_in

DISPLAY_CAP = 1000


class AnalysisStatus(models.TextChoices):
    # Its source is being read slice by slice; a copy started again for the same session
    # and entity resumes after the last committed slice.
    READING = "reading"
    # Its change set and counts are written; older analyses are all complete.
    COMPLETE = "complete"


class DifferentialAnalysisResult(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(
        "migrationsapp.MigrationStatus",
        on_delete=models.SET_NULL,
        to_field="migration_session_id",
        db_column="migration_session_id",
        null=True,
        blank=True,
        related_name="analyses",
    )
    entity_type = models.CharField(max_length=100)
    detection = models.CharField(max_length=16, choices=Detection.choices, default=Detection.HASH)
    mapping_version = models.PositiveIntegerField(null=True, blank=True)
    analysis_timestamp = models.DateTimeField()
    source_record_count = models.BigIntegerField(default=0)
    destination_record_count = models.BigIntegerField(default=0)
    new_records = models.JSONField(default=list, blank=True)
    modified_records = models.JSONField(default=list, blank=True)
    deleted_records = models.JSONField(default=list, blank=True)
    truncated = models.BooleanField(default=False)
    new_count = models.BigIntegerField(default=0)
    modified_count = models.BigIntegerField(default=0)
    deleted_count = models.BigIntegerField(default=0)
    unchanged_count = models.BigIntegerField(default=0)
    retry_count = models.BigIntegerField(default=0)
    last_migration_timestamp = models.DateTimeField(null=True, blank=True)
    analysis_metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=AnalysisStatus.choices, default=AnalysisStatus.COMPLETE
    )
    # The read's checkpoint, committed with each slice: slices staged, source rows read, and
    # the rest of engine.diff.SliceCheckpoint (where the next slice starts, rows staged, NULL
    # keys, seconds, what was read).
    slices_done = models.PositiveIntegerField(default=0)
    rows_seen = models.BigIntegerField(default=0)
    slice_checkpoint = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "differential_analysis_results"
        ordering = ["-analysis_timestamp"]
        indexes = [
            models.Index(
                fields=["entity_type", "analysis_timestamp"], name="analysis_entity_time_idx"
            ),
            models.Index(fields=["last_migration_timestamp"], name="analysis_last_migration_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=check_in("detection", Detection), name="analysis_detection_valid"
            ),
            models.CheckConstraint(
                condition=check_in("status", AnalysisStatus), name="analysis_status_valid"
            ),
            # One analysis of an entity is read at a time in a session: the one a restarted
            # copy resumes (an analysis without a session never resumes).
            models.UniqueConstraint(
                fields=["session", "entity_type"],
                condition=models.Q(status=AnalysisStatus.READING),
                name="analysis_one_reading",
            ),
            *[
                models.CheckConstraint(
                    condition=models.Q(**{f"{name}__gte": 0}), name=f"analysis_{name}_nonneg"
                )
                for name in (
                    "source_record_count",
                    "destination_record_count",
                    "new_count",
                    "modified_count",
                    "deleted_count",
                    "unchanged_count",
                    "retry_count",
                    "rows_seen",
                )
            ],
        ]

    def __str__(self) -> str:
        return f"analysis of {self.entity_type} at {self.analysis_timestamp:%Y-%m-%d %H:%M}"


class AnalysisChange(models.Model):
    """One key of an analysis's change set; ``id`` orders the batches."""

    id = models.BigAutoField(primary_key=True)
    analysis = models.ForeignKey(
        DifferentialAnalysisResult, on_delete=models.CASCADE, related_name="changes"
    )
    kind = models.CharField(max_length=16, choices=ChangeKind.choices)
    legacy_key = models.JSONField()
    legacy_key_text = models.TextField()
    content_hash = models.CharField(max_length=64, blank=True, default="")
    # `reference: self` columns written NULL by the upsert, to be set by the second pass
    # once every row of the entity exists: {"uuid": <the row's UUID>, "columns":
    # {destination column: parent's legacy key text}}. Kept with the change set so that a
    # resumed run finishes the second pass without reading the source again.
    self_links = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "differential_analysis_changes"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["analysis", "legacy_key_text"], name="change_key_once"),
            models.CheckConstraint(
                condition=check_in("kind", ChangeKind), name="change_kind_valid"
            ),
        ]
        indexes = [models.Index(fields=["analysis", "kind", "id"], name="change_batch_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.legacy_key_text}"
