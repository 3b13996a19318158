"""Forms of the web mapping editor: a draft's settings, and one formset per table of rows.

They build on the forms the admin uses too (``migrationsapp.forms``: same fields, same
cleaning of lists and JSON cells) with one-line widgets for a table, and with column
pickers: ``pick_columns`` turns a text cell into a select of the introspected columns,
keeping a stored value that is not a column (so that validation can point at it) and
leaving free text where the table is unknown.
"""

from __future__ import annotations

import datetime as dt
import re

from django import forms
from django.forms.models import BaseInlineFormSet, inlineformset_factory

from migrationsapp.forms.mapping import (
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


def _line(size: int = 18, placeholder: str = "") -> forms.TextInput:
    attrs: dict[str, object] = {"size": size}
    if placeholder:
        attrs["placeholder"] = placeholder
    return forms.TextInput(attrs=attrs)


class DraftSettingsForm(DefinitionForm):
    """A draft's own columns; its entity never changes (versions belong to the entity)."""

    class Meta(DefinitionForm.Meta):
        fields = tuple(name for name in DefinitionForm.Meta.fields if name != "entity_type")
        widgets = {"description": forms.Textarea(attrs={"rows": 2, "cols": 60})}


class FieldRowForm(FieldMappingForm):
    class Meta(FieldMappingForm.Meta):
        fields = tuple(name for name in FieldMappingForm.Meta.fields if name != "data_type")
        widgets = {
            "position": forms.NumberInput(attrs={"size": 3, "class": "narrow"}),
            "source_field": _line(),
            "destination_field": _line(),
            "transformation": _line(30, "trim, or an expression of value"),
            "expression": _line(60, "an expression of the source columns"),
            "reference": _line(8),
        }


# The parameters each rule type takes (engine.validation); the others are not stored.
RULE_PARAMETERS = {"required": (), "unique": (), "format": ("pattern",), "range": ("min", "max")}
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def _bound(text: str, name: str):
    """A range bound as the mapping file writes it: a number, an ISO date or ``today``."""
    if _NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)
    try:
        if text == "today" or dt.date.fromisoformat(text):
            return text
    except ValueError:
        pass
    raise forms.ValidationError(f"{name}: write a number, a date (2024-01-31) or today.")


class RuleRowForm(ValidationRuleForm):
    """A validation rule with a field per parameter (pattern; min and max) instead of JSON."""

    pattern = forms.CharField(
        required=False,
        strip=False,
        widget=_line(24, "email, or an RE2 pattern"),
        help_text="format: the named pattern email or a regular expression (RE2).",
    )
    min = forms.CharField(required=False, widget=_line(8, "number, date, today"))
    max = forms.CharField(required=False, widget=_line(8, "number, date, today"))

    class Meta(ValidationRuleForm.Meta):
        fields = ("position", "field_name", "rule_type")
        widgets = {
            "position": forms.NumberInput(attrs={"size": 3, "class": "narrow"}),
            "field_name": _line(),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.rule_parameters or {}
        if isinstance(stored, dict):
            for name in ("pattern", "min", "max"):
                if stored.get(name) is not None:
                    self.initial.setdefault(name, str(stored[name]))

    def clean(self):
        cleaned = super().clean()
        params = {}
        for name in RULE_PARAMETERS.get(cleaned.get("rule_type") or "", ()):
            value = cleaned.get(name) or ""
            if value.strip():
                params[name] = value if name == "pattern" else _bound(value.strip(), name)
        # A parameter of another rule type is hidden on the page: it is dropped, not refused.
        self.instance.rule_parameters = params
        return cleaned


class FunctionRowForm(forms.ModelForm):
    class Meta:
        model = TransformationFunction
        fields = ("name", "function_body", "description")
        widgets = {
            "name": _line(),
            "function_body": _line(60, "an expression of its keyword parameters"),
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


def _number_new_rows(formset: BaseInlineFormSet) -> None:
    """Blank rows offer the positions after the last stored one (not 0 for all of them)."""
    if "position" not in formset.empty_form.fields:
        return
    stored = [f.instance.position for f in formset.initial_forms]
    following = max(stored, default=0) + 1
    for offset, form in enumerate(formset.extra_forms):
        form.initial.setdefault("position", following + offset)
        form.fields["position"].initial = following + offset


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
        _number_new_rows(formset)
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
