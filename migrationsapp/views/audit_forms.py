"""Filter forms of the audit pages: GET parameters in, the selectors' filter objects out."""

from __future__ import annotations

from django import forms

from migrationsapp.engine.ids import decode_key, encode_key
from migrationsapp.models.choices import LogLevel, OperationType, SessionStatus
from migrationsapp.selectors.history import LogFilters, SessionFilters
from migrationsapp.selectors.quarantine import ALL, OPEN, RESOLVED, QuarantineFilters

ANY = [("", "any")]
# Text inputs that suggest the known entity names (a <datalist> on the page), yet take any.
ENTITY_INPUT = forms.TextInput(attrs={"list": "entity-names", "autocomplete": "off"})


def key_text(text: str) -> str:
    """A key as typed, re-encoded (as ``diffmig lookup`` does) so needless escapes still match."""
    try:
        return encode_key(decode_key(text))
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from exc


class SessionFilterForm(forms.Form):
    status = forms.ChoiceField(choices=ANY + SessionStatus.choices, required=False)
    entity = forms.CharField(required=False, max_length=100, widget=ENTITY_INPUT)
    since = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("'From' is after 'To'.")
        return data

    def filters(self) -> SessionFilters:
        data = self.cleaned_data
        return SessionFilters(
            status=data["status"] or None,
            entity=data["entity"].strip() or None,
            since=data["since"],
            until=data["until"],
        )


class LogFilterForm(forms.Form):
    level = forms.ChoiceField(
        choices=[("", "any"), *((v, f"{v} and above") for v in reversed(LogLevel.values))],
        required=False,
        label="Level",
    )
    operation = forms.ChoiceField(choices=ANY + OperationType.choices, required=False)
    entity = forms.CharField(required=False, max_length=100, widget=ENTITY_INPUT)
    record = forms.CharField(required=False, max_length=2000, strip=False, label="Record key")
    session = forms.UUIDField(required=False, label="Session id")

    def clean_record(self) -> str:
        text = self.cleaned_data["record"]
        return key_text(text) if text else ""

    def filters(self) -> LogFilters:
        data = self.cleaned_data
        return LogFilters(
            level=data["level"] or None,
            operation=data["operation"] or None,
            entity=data["entity"].strip() or None,
            record=data["record"] or None,
            session=data["session"],
        )


class LookupForm(forms.Form):
    entity = forms.CharField(max_length=100, widget=ENTITY_INPUT)
    key = forms.CharField(max_length=2000, strip=False, help_text="e.g. 42, 1007/3, NEW\\/ 1,2")

    def clean_entity(self) -> str:
        return self.cleaned_data["entity"].strip()

    def clean_key(self) -> str:
        return key_text(self.cleaned_data["key"])


class QuarantineFilterForm(forms.Form):
    state = forms.ChoiceField(
        choices=[(OPEN, "open"), (RESOLVED, "resolved"), (ALL, "all")],
        required=False,
        initial=OPEN,
    )
    entity = forms.CharField(required=False, max_length=100, widget=ENTITY_INPUT)
    rule = forms.CharField(
        required=False, max_length=32, widget=forms.TextInput(attrs={"list": "rule-names"})
    )

    def filters(self) -> QuarantineFilters:
        data = self.cleaned_data
        return QuarantineFilters(
            entity=data["entity"].strip() or None,
            rule=data["rule"].strip() or None,
            state=data["state"] or OPEN,
        )
