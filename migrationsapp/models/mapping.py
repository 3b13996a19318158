"""Schema mapping definitions: one versioned definition per entity, one active at a time.

The seed keeps field mappings, validation rules and transformation functions as arrays on
the definition; here they are child tables (one row each) so that editors edit rows, not
JSON, and every version keeps its own rows. A definition's content never changes once it
has been active: an edit is a new version (``services.mappings``). Seed rule kept: one
active mapping per entity (a partial unique constraint). ``version`` is an integer.
"""

from __future__ import annotations

import uuid

from django.db import models

from migrationsapp.engine.mapping.spec import ENTITY_SETTINGS

from .choices import DeletePolicy, Detection, ValidationRuleType, check_in

# A definition's settings as an editor shows them (admin form, mapping pages): the
# connections it reads and writes, then the mapping file's settings of an entity.
DEFINITION_SETTINGS = ("source_connection", "destination_connection", *ENTITY_SETTINGS)


class SchemaMappingDefinition(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    entity_type = models.CharField(max_length=100)
    source_connection = models.CharField(max_length=100, default="legacy")
    destination_connection = models.CharField(max_length=100, default="target")
    source_table = models.CharField(max_length=200)
    source_key = models.JSONField(default=list)
    destination_table = models.CharField(max_length=200)
    destination_key = models.CharField(max_length=200, default="id")
    depends_on = models.JSONField(default=list, blank=True)
    detection = models.CharField(max_length=16, choices=Detection.choices, default=Detection.HASH)
    timestamp_column = models.CharField(max_length=200, blank=True, default="")
    deletes = models.CharField(
        max_length=16, choices=DeletePolicy.choices, default=DeletePolicy.HARD
    )
    soft_delete_column = models.CharField(max_length=200, blank=True, default="")
    max_delete_share = models.FloatField(default=0.05)
    match_on = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1)
    is_active = models.BooleanField(default=False)
    # sha256 of the canonical content: an import of unchanged content makes no new version.
    content_fingerprint = models.CharField(max_length=64, blank=True, default="")
    description = models.TextField(blank=True, default="")
    created_by = models.CharField(max_length=150, blank=True, default="")
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "schema_mapping_definitions"
        verbose_name = "mapping definition"
        ordering = ["entity_type", "-version"]
        indexes = [
            models.Index(
                fields=["entity_type", "is_active", "version"], name="mapping_entity_active_idx"
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["entity_type", "version"], name="mapping_version_uniq"),
            models.UniqueConstraint(
                fields=["entity_type"],
                condition=models.Q(is_active=True),
                name="mapping_one_active_per_entity",
            ),
            models.CheckConstraint(
                condition=models.Q(version__gte=1), name="mapping_version_positive"
            ),
            models.CheckConstraint(
                condition=check_in("detection", Detection), name="mapping_detection_valid"
            ),
            models.CheckConstraint(
                condition=check_in("deletes", DeletePolicy), name="mapping_deletes_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(max_delete_share__gte=0, max_delete_share__lte=1),
                name="mapping_delete_share_range",
            ),
        ]

    def __str__(self) -> str:
        active = " (active)" if self.is_active else ""
        return f"{self.entity_type} v{self.version}{active}"

    @property
    def is_draft(self) -> bool:
        """Editable: never activated. Once active, a version's content never changes again."""
        return not self.is_active and self.activated_at is None


class FieldMapping(models.Model):
    """One destination field: where its value comes from and how it is transformed."""

    definition = models.ForeignKey(
        SchemaMappingDefinition, on_delete=models.CASCADE, related_name="field_mappings"
    )
    position = models.PositiveIntegerField(default=0)
    source_field = models.CharField(max_length=200, blank=True, default="")
    destination_field = models.CharField(max_length=200)
    expression = models.TextField(blank=True, default="")
    transformation = models.TextField(blank=True, default="")
    # The destination column's type as introspected (informational, as in the seed).
    data_type = models.CharField(max_length=32, blank=True, default="")
    is_required = models.BooleanField(default=False)
    has_default = models.BooleanField(default=False)
    default_value = models.JSONField(null=True, blank=True)
    reference = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        db_table = "schema_field_mappings"
        ordering = ["definition", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["definition", "destination_field"], name="field_destination_once"
            ),
        ]

    def __str__(self) -> str:
        origin = self.source_field or self.expression or "constant"
        return f"{origin} → {self.destination_field}"


class ValidationRule(models.Model):
    definition = models.ForeignKey(
        SchemaMappingDefinition, on_delete=models.CASCADE, related_name="validation_rules"
    )
    position = models.PositiveIntegerField(default=0)
    field_name = models.CharField(max_length=200)
    rule_type = models.CharField(max_length=16, choices=ValidationRuleType.choices)
    rule_parameters = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "schema_validation_rules"
        ordering = ["definition", "position"]
        constraints = [
            models.CheckConstraint(
                condition=check_in("rule_type", ValidationRuleType), name="rule_type_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_type} on {self.field_name}"


class TransformationFunction(models.Model):
    """A named, sandboxed expression (never code that is executed)."""

    definition = models.ForeignKey(
        SchemaMappingDefinition, on_delete=models.CASCADE, related_name="transformation_functions"
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    function_body = models.TextField()

    class Meta:
        db_table = "schema_transformation_functions"
        ordering = ["definition", "name"]
        constraints = [
            models.UniqueConstraint(fields=["definition", "name"], name="function_name_once"),
        ]

    def __str__(self) -> str:
        return self.name
