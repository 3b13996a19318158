"""Mapping definition forms shared by the admin and the web editor: lists as ``a, b`` text,
JSON cells on one line."""

from __future__ import annotations

from django import forms

from migrationsapp.models import FieldMapping, SchemaMappingDefinition, ValidationRule
from migrationsapp.models.mapping import DEFINITION_SETTINGS


class CommaSeparatedListField(forms.CharField):
    """A JSON list of names edited as ``a, b, c`` text."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(str(item) for item in value)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        return [part.strip() for part in text.split(",") if part.strip()]


class DefinitionForm(forms.ModelForm):
    source_key = CommaSeparatedListField(help_text="Key columns of the source table, e.g. id")
    depends_on = CommaSeparatedListField(
        required=False, help_text="Entities whose rows this one references, e.g. office, doctor"
    )
    match_on = CommaSeparatedListField(required=False, help_text="Columns to match on, if any")

    class Meta:
        model = SchemaMappingDefinition
        fields = ("entity_type", "description", *DEFINITION_SETTINGS)


class OptionalJSONField(forms.JSONField):
    """A JSON value where empty means null: a blank cell instead of ``null`` on every row."""

    def prepare_value(self, value):
        return "" if value is None else super().prepare_value(value)


class FieldMappingForm(forms.ModelForm):
    default_value = OptionalJSONField(
        required=False,
        widget=forms.TextInput(attrs={"size": 16}),
        help_text="JSON, used when 'has default' is ticked; empty is null.",
    )

    class Meta:
        model = FieldMapping
        fields = (
            "position",
            "source_field",
            "destination_field",
            "transformation",
            "expression",
            "reference",
            "is_required",
            "has_default",
            "default_value",
            "data_type",
        )


class ValidationRuleForm(forms.ModelForm):
    class Meta:
        model = ValidationRule
        fields = ("position", "field_name", "rule_type", "rule_parameters")

    def clean_rule_parameters(self):
        value = self.cleaned_data.get("rule_parameters")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError('Write an object, e.g. {"pattern": "email"}.')
        return value
