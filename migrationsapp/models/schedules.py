"""A schedule of a differential migration: which entities, how often, when next, how it went.

Every ``interval_hours`` hours, or at each time of a cron expression (five fields, UTC),
the watchdog (``services.run_schedules.fire_due``) launches a differential session of the
entities (empty: every active one) through the same launch service as the web and the CLI.
``next_run_at`` moves on by compare-and-set, so that two workers never fire one tick.
"""

from __future__ import annotations

import uuid

from django.db import models


class RunSchedule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    entities = models.JSONField(default=list, blank=True)  # empty: every active entity
    interval_hours = models.PositiveIntegerField(null=True, blank=True)
    cron = models.CharField(max_length=100, blank=True, default="")
    paused = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    # launched | skipped | refused, with one line saying why; the session of the last launch.
    last_outcome = models.CharField(max_length=16, blank=True, default="")
    last_message = models.TextField(blank=True, default="")
    last_session_id = models.UUIDField(null=True, blank=True)
    consecutive_skips = models.PositiveIntegerField(default=0)
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "migration_run_schedules"
        ordering = ["name"]
        indexes = [models.Index(fields=["paused", "next_run_at"], name="schedule_due_idx")]
        constraints = [
            # Exactly one of an interval and a cron expression.
            models.CheckConstraint(
                condition=(
                    models.Q(interval_hours__isnull=False, cron="")
                    | (models.Q(interval_hours__isnull=True) & ~models.Q(cron=""))
                ),
                name="schedule_interval_xor_cron",
            ),
            models.CheckConstraint(
                condition=models.Q(interval_hours__isnull=True) | models.Q(interval_hours__gte=1),
                name="schedule_interval_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"schedule {self.name}"

    @property
    def every(self) -> str:
        """How often, for people: ``every 6 hours`` or ``cron 0 2 * * *``."""
        if self.interval_hours == 1:
            return "every hour"
        if self.interval_hours:
            return f"every {self.interval_hours} hours"
        return f"cron {self.cron} (UTC)"
