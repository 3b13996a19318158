"""What diffmig knows of each record: its destination UUID, its history, its quarantine.

* ``RecordMap`` (``migration_mappings``): legacy key → destination UUID, content hash and
  mapping version of what was last written. A UUID never changes once given.
* ``RecordEvent`` (``migration_record_events``): one row per record per run that created,
  updated, deleted, failed or skipped it — the auditors' history, written in bulk per batch.
* ``QuarantinedRecord`` (``migration_quarantine``): a record a rule, transform or missing
  parent refused, with the reason; tried again next run while unresolved.

Keys are stored twice: typed (JSON list, to fetch the row again) and as ``/`` text (exact,
binary identity; see ``engine.ids``).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .choices import RecordAction, check_in


class RecordMap(models.Model):
    id = models.BigAutoField(primary_key=True)
    entity_type = models.CharField(max_length=100)
    legacy_key = models.JSONField()
    legacy_key_text = models.TextField()
    destination_uuid = models.UUIDField()
    content_hash = models.CharField(max_length=64, blank=True, default="")
    mapping_version = models.PositiveIntegerField(default=1)
    # Neither a database foreign key nor an index on the two session columns: every batch
    # writes them for thousands of rows, and the deferred check of each row's key at commit
    # cost as much as the rest of the record map's write, while no page looks a map entry up
    # by session (the record events answer "what did this session do"). Sessions are never
    # deleted (the retention policy keeps them); the ORM still nulls the columns should one be.
    first_session = models.ForeignKey(
        "migrationsapp.MigrationStatus",
        on_delete=models.SET_NULL,
        to_field="migration_session_id",
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    last_session = models.ForeignKey(
        "migrationsapp.MigrationStatus",
        on_delete=models.SET_NULL,
        to_field="migration_session_id",
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    first_migrated_at = models.DateTimeField(default=timezone.now)
    last_migrated_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "migration_mappings"
        verbose_name = "record map entry"
        verbose_name_plural = "record map"
        constraints = [
            models.UniqueConstraint(
                fields=["entity_type", "legacy_key_text"], name="map_entity_key_uniq"
            ),
        ]
        indexes = [models.Index(fields=["destination_uuid"], name="map_uuid_idx")]

    def __str__(self) -> str:
        return f"{self.entity_type} {self.legacy_key_text} → {self.destination_uuid}"


class RecordEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    entity_type = models.CharField(max_length=100)
    legacy_key_text = models.TextField()
    # No database foreign key (one deferred check per event at commit, for a session that
    # the same run created and nothing deletes); the index stays, for a session's events.
    session = models.ForeignKey(
        "migrationsapp.MigrationStatus",
        on_delete=models.CASCADE,
        to_field="migration_session_id",
        db_column="migration_session_id",
        related_name="record_events",
        db_constraint=False,
    )
    action = models.CharField(max_length=16, choices=RecordAction.choices)
    destination_uuid = models.UUIDField(null=True, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, default="")
    mapping_version = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")
    occurred_at = models.DateTimeField(default=timezone.now)
    # An update's changed destination fields, {field: [before, after]} (engine.changes):
    # empty when the record was rewritten unchanged, null when not known (other actions,
    # dry runs, events written before fields were kept).
    changes = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "migration_record_events"
        ordering = ["id"]
        # The values before and after an update are the records' data: only users who may
        # see data are shown them (roles.py); the field names are part of the history.
        permissions = [("see_record_values", "Can see the values an update changed")]
        indexes = [
            models.Index(
                fields=["entity_type", "legacy_key_text", "occurred_at"], name="event_record_idx"
            ),
            models.Index(fields=["occurred_at"], name="event_time_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=check_in("action", RecordAction), name="event_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity_type} {self.legacy_key_text} {self.action}"


class QuarantinedRecord(models.Model):
    id = models.BigAutoField(primary_key=True)
    entity_type = models.CharField(max_length=100)
    legacy_key = models.JSONField()
    legacy_key_text = models.TextField()
    rule = models.CharField(max_length=32)
    field = models.CharField(max_length=200, blank=True, default="")
    value = models.TextField(blank=True, default="")
    reason = models.TextField()
    content_hash = models.CharField(max_length=64, blank=True, default="")
    mapping_version = models.PositiveIntegerField(null=True, blank=True)
    last_session = models.ForeignKey(
        "migrationsapp.MigrationStatus",
        on_delete=models.SET_NULL,
        to_field="migration_session_id",
        null=True,
        blank=True,
        related_name="+",
    )
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Who closed the entry by hand and why (``services.quarantine``); both stay empty when a
    # run closed it because the record went through. Database defaults too, so that rows
    # written by raw SQL or COPY need not name them.
    resolved_by = models.CharField(max_length=150, blank=True, default="", db_default="")
    resolution_note = models.TextField(blank=True, default="", db_default="")

    class Meta:
        db_table = "migration_quarantine"
        verbose_name = "quarantined record"
        constraints = [
            # One open quarantine entry per record; a resolved one may be followed by another.
            models.UniqueConstraint(
                fields=["entity_type", "legacy_key_text"],
                condition=models.Q(resolved_at__isnull=True),
                name="quarantine_open_once",
            ),
        ]
        indexes = [
            models.Index(fields=["entity_type", "resolved_at"], name="quarantine_entity_idx"),
            # A record's quarantine history, resolved entries included (the lookup page).
            models.Index(fields=["entity_type", "legacy_key_text"], name="quarantine_record_idx"),
            # The quarantine page's default list: the open entries, newest first.
            models.Index(
                fields=["-id"],
                condition=models.Q(resolved_at__isnull=True),
                name="quarantine_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity_type} {self.legacy_key_text}: {self.reason[:60]}"
