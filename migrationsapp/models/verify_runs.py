"""A stored verification (`verify` launched from the web, or by the CLI) and its report per entity.

A ``VerifyRun`` is launched pending, runs once (compare-and-set pending → running in
``services.verify_runs``) and ends ``equal``, ``mismatch`` or ``failed`` (with the error).
Each entity's report keeps the counts as columns (for the history's badges) and the
``verify --json`` entry of that entity, with its capped example lists, as JSON.
"""

from __future__ import annotations

import uuid

from django.db import models

from .choices import check_in


class VerifyState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    EQUAL = "equal"
    MISMATCH = "mismatch"
    FAILED = "failed"


FINISHED_VERIFY = (VerifyState.EQUAL, VerifyState.MISMATCH, VerifyState.FAILED)


class VerifyRun(models.Model):
    """One verification of some entities (empty: every active one) against the active mapping."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    state = models.CharField(
        max_length=16, choices=VerifyState.choices, default=VerifyState.PENDING
    )
    entities = models.JSONField(default=list, blank=True)  # as asked; empty: all active
    # The completed session whose "verify now" launched it (no foreign key: retention may
    # remove neither independently of the other).
    session_id = models.UUIDField(null=True, blank=True)
    launched_by = models.CharField(max_length=150, blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "migration_verify_runs"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["-created_at", "-id"], name="verify_created_id_idx")]
        constraints = [
            models.CheckConstraint(
                condition=check_in("state", VerifyState), name="verify_state_valid"
            )
        ]

    def __str__(self) -> str:
        return f"verify {self.id} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_VERIFY


class VerifyEntityReport(models.Model):
    """What verifying one entity found: counts, and the examples as ``verify --json`` has them."""

    run = models.ForeignKey(VerifyRun, on_delete=models.CASCADE, related_name="reports")
    entity_type = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0)  # dependency order
    mapping_version = models.PositiveIntegerField(default=0)
    equal = models.BooleanField(default=False)
    compared = models.BigIntegerField(default=0)
    missing = models.BigIntegerField(default=0)
    extra = models.BigIntegerField(default=0)
    different = models.BigIntegerField(default=0)  # fields
    different_records = models.BigIntegerField(default=0)
    quarantined = models.BigIntegerField(default=0)
    stale = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0.0)
    report = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "migration_verify_entity_reports"
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "entity_type"], name="verify_report_entity_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.entity_type}: {'equal' if self.equal else 'mismatch'}"

    @property
    def quarantine_states(self) -> list[tuple[str, int]]:
        """(state in words, count) of the quarantined records, for the report page."""
        counts = (self.report or {}).get("counts", {})
        return [
            (key.removeprefix("quarantined_").replace("_", " "), n)
            for key, n in counts.items()
            if key.startswith("quarantined_") and n
        ]
