"""Forms of the web mapping editor: a draft's settings, and one formset per table of rows.

They build on the admin's forms (same fields, same cleaning of lists and JSON cells) with
one-line widgets for a table, and with column pickers: ``pick_columns`` turns a text cell
into a select of the introspected columns, keeping a stored value that is not a column (so
that validation can point at it) and leaving free text where the table is unknown.
"""

from __future__ import annotations

from django import forms
from django.forms.models import BaseInlineFormSet, inlineformset_factory

from migrationsapp.admin.mapping_forms import (
    DefinitionForm,
    FieldMappingForm,
    ValidationRuleForm,
)
from migrationsapp.models import (
    FieldMapping,
    SchemaMappingDefinition,
    TransformationFunction,
    ValidationRule,
)
from migrationsapp.selectors.mapping_views import IntrospectedTables
from migrationsapp.services.mapping_files import MAX_MAPPING_BYTES
from migrationsapp.services.preview import MAX_LIMIT

ROWS_EXTRA = 2  # blank rows offered for new entries


def _line(size: int = 18) -> forms.TextInput:
    return forms.TextInput(attrs={"size": size})


class DraftSettingsForm(DefinitionForm):
    """A draft's own columns; its entity never changes (versions belong to the entity)."""

    class Meta(DefinitionForm.Meta):
        fields = tuple(name for name in DefinitionForm.Meta.fields if name != "entity_type")
        widgets = {"description": forms.Textarea(attrs={"rows": 2, "cols": 60})}


class FieldRowForm(FieldMappingForm):
    class Meta(FieldMappingForm.Meta):
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
        )
        widgets = {
            "position": forms.NumberInput(attrs={"size": 3, "class": "narrow"}),
            "source_field": _line(),
            "destination_field": _line(),
            "transformation": _line(16),
            "expression": _line(24),
            "reference": _line(8),
        }


class RuleRowForm(ValidationRuleForm):
    class Meta(ValidationRuleForm.Meta):
        widgets = {
            "position": forms.NumberInput(attrs={"size": 3, "class": "narrow"}),
            "field_name": _line(),
            "rule_parameters": _line(30),
        }


class FunctionRowForm(forms.ModelForm):
    class Meta:
        model = TransformationFunction
        fields = ("name", "function_body", "description")
        widgets = {
            "name": _line(),
            "function_body": _line(50),
            "description": _line(30),
        }


def _formset(model, form) -> type[BaseInlineFormSet]:
    return inlineformset_factory(
        SchemaMappingDefinition,
        model,
        form=form,
        fields=form.Meta.fields,
        extra=ROWS_EXTRA,
        can_delete=True,
    )


FieldFormSet = _formset(FieldMapping, FieldRowForm)
RuleFormSet = _formset(ValidationRule, RuleRowForm)
FunctionFormSet = _formset(TransformationFunction, FunctionRowForm)

FORMSET_PREFIXES = {"fields": FieldFormSet, "rules": RuleFormSet, "functions": FunctionFormSet}
# The cell that names a stored row (for the page: ``data-field``, problems next to it).
ROW_KEYS = {"fields": "destination_field", "rules": "field_name", "functions": "name"}


def pick_columns(formset: BaseInlineFormSet, name: str, columns: list[str] | None) -> None:
    """Offer ``columns`` in a select for the cell ``name`` of every row (None: free text)."""
    if columns is None:
        return
    for form in [*formset.forms, formset.empty_form]:
        current = form[name].value() or ""
        choices = [("", "\N{EN DASH}"), *((column, column) for column in columns)]
        if current and current not in columns:
            choices.append((current, f"{current} (not a column)"))
        form.fields[name].widget = forms.Select(choices=choices)


def row_formsets(
    *, data, definition: SchemaMappingDefinition, tables: IntrospectedTables
) -> dict[str, BaseInlineFormSet]:
    """The three formsets of a draft, with pickers of the introspected columns."""
    formsets = {
        prefix: factory(data, instance=definition, prefix=prefix)
        for prefix, factory in FORMSET_PREFIXES.items()
    }
    for prefix, formset in formsets.items():
        for form in formset.forms:
            form.row_key = getattr(form.instance, ROW_KEYS[prefix])
            form.problems = []
    pick_columns(formsets["fields"], "source_field", tables.source_columns)
    pick_columns(formsets["fields"], "destination_field", tables.destination_columns)
    pick_columns(formsets["rules"], "field_name", tables.destination_columns)
    return formsets


class PreviewForm(forms.Form):
    limit = forms.IntegerField(min_value=1, max_value=MAX_LIMIT, initial=10, required=False)


class ImportForm(forms.Form):
    MAX_BYTES = MAX_MAPPING_BYTES  # the command line's cap too

    file = forms.FileField(required=False, help_text="A mapping file (YAML).")
    text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "cols": 90, "class": "mono"}),
        help_text="…or paste its text.",
    )
    dry_run = forms.BooleanField(
        required=False, initial=True, label="Dry run: only check, store nothing"
    )

    def clean(self):
        data = super().clean()
        upload, text = data.get("file"), data.get("text") or ""
        if bool(upload) == bool(text.strip()):
            raise forms.ValidationError("Give either a file or the text, not both or neither.")
        if upload:
            if upload.size > self.MAX_BYTES:
                raise forms.ValidationError("The file is larger than 1 MB.")
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise forms.ValidationError("The file is not UTF-8 text.") from exc
        data["mapping_text"] = text
        return data
