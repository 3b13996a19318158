"""Forms of the audit pages: GET filters in, the selectors' filter objects out; the
quarantine's bulk action in, the service's selection out."""

from __future__ import annotations

import json

from django import forms

from migrationsapp.engine.ids import decode_key, encode_key
from migrationsapp.models import QuarantinedRecord
from migrationsapp.models.choices import AuditAction, LogLevel, OperationType, SessionStatus
from migrationsapp.selectors.history import (
    COMPLETED_WITH_FAILURES,
    LogFilters,
    SessionFilters,
    known_entities,
)
from migrationsapp.selectors.progress import launchable_entities
from migrationsapp.selectors.quarantine import ALL, OPEN, RESOLVED, QuarantineFilters
from migrationsapp.services.quarantine import (
    NOTE_MAX,
    QuarantineGroupKey,
    QuarantineSelection,
)

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
    status = forms.ChoiceField(
        choices=[
            *ANY,
            *SessionStatus.choices,
            (COMPLETED_WITH_FAILURES, "completed with failures"),
        ],
        required=False,
    )
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
    # The codes as they are stored and documented ("session.pause_requested"), not as titles.
    action = forms.ChoiceField(
        choices=ANY + [(code, code) for code in AuditAction.values], required=False
    )
    actor = forms.CharField(
        required=False,
        max_length=150,
        help_text='A username, or "cli", "schedule", "worker".',
    )
    entity = forms.CharField(required=False, max_length=100, widget=ENTITY_INPUT)
    record = forms.CharField(required=False, max_length=2000, strip=False, label="Record key")
    session = forms.UUIDField(required=False, label="Session id")

    def __init__(self, data=None, *args, **kwargs) -> None:
        # INFO and up unless asked: a batch's line is DEBUG; "any" (level=) shows them all.
        if data is not None and "level" not in data:
            data = data.copy()
            data["level"] = LogLevel.INFO
        super().__init__(data, *args, **kwargs)

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
            action=data["action"] or None,
            actor=data["actor"].strip() or None,
        )


class LookupForm(forms.Form):
    """Entity (one with an active mapping) and legacy key.

    A link from the log or the quarantine may name an entity that no longer has an active
    mapping; one that has ever had a definition is offered too, so such links still work.
    """

    entity = forms.ChoiceField()
    key = forms.CharField(max_length=2000, strip=False, help_text="e.g. 42, 1007/3, NEW\\/ 1,2")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        names = launchable_entities()
        choices = [("", "choose an entity")] + [(name, name) for name in names]
        asked = (self.data.get("entity") or "").strip() if self.is_bound else ""
        if asked and asked not in names and asked in known_entities():
            choices.append((asked, f"{asked} (no active mapping)"))
        self.fields["entity"].choices = choices

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
    field = forms.CharField(required=False, max_length=200)
    parent = forms.IntegerField(
        required=False, min_value=1, widget=forms.HiddenInput, label="Children of entry"
    )
    # A session's Failed tile links here: the entries that session last refused.
    session = forms.UUIDField(required=False, widget=forms.HiddenInput, label="Session id")

    def clean_parent(self) -> QuarantinedRecord | None:
        parent_id = self.cleaned_data["parent"]
        if parent_id is None:
            return None
        parent = QuarantinedRecord.objects.filter(pk=parent_id).first()
        if parent is None:
            raise forms.ValidationError(f"there is no quarantine entry {parent_id}")
        return parent

    def filters(self) -> QuarantineFilters:
        data = self.cleaned_data
        return QuarantineFilters(
            entity=data["entity"].strip() or None,
            rule=data["rule"].strip() or None,
            field=data["field"].strip() or None,
            state=data["state"] or OPEN,
            parent=data["parent"],
            session=data["session"],
        )


class ListField(forms.Field):
    """Every value of a repeated parameter (checkboxes), each checked by ``item``."""

    widget = forms.MultipleHiddenInput

    def item(self, text: str):
        raise NotImplementedError

    def to_python(self, value) -> list:
        values = value or []
        if len(values) > self.max_items:
            raise forms.ValidationError(f"at most {self.max_items} at once")
        return [self.item(text) for text in values]

    max_items = 1000


class IdListField(ListField):
    def item(self, text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError(f"{text!r} is not an entry id") from exc
        if value < 1:
            raise forms.ValidationError(f"{text!r} is not an entry id")
        return value


def group_token(entity: str, rule: str, field: str) -> str:
    """A group's value in a form: the three names as JSON (any text survives)."""
    return json.dumps([entity, rule, field], ensure_ascii=False)


class GroupListField(ListField):
    max_items = 100

    def item(self, text: str) -> QuarantineGroupKey:
        try:
            names = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError("a group this page did not write") from exc
        if not (
            isinstance(names, list)
            and len(names) == 3
            and all(isinstance(name, str) and len(name) <= 200 for name in names)
        ):
            raise forms.ValidationError("a group this page did not write")
        return QuarantineGroupKey(*names)


class QuarantineBulkForm(forms.Form):
    RETRY, RESOLVE = "retry", "resolve"

    action = forms.ChoiceField(choices=[(RETRY, "Retry on next run"), (RESOLVE, "Resolve")])
    note = forms.CharField(
        required=False,
        max_length=NOTE_MAX,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 50}),
        help_text="Required to resolve: why the records need nothing more.",
    )
    ids = IdListField(required=False)
    families = IdListField(required=False)
    groups = GroupListField(required=False)

    def selection(self) -> QuarantineSelection:
        data = self.cleaned_data
        return QuarantineSelection(
            ids=tuple(dict.fromkeys(data["ids"])),
            groups=tuple(dict.fromkeys(data["groups"])),
            families=tuple(dict.fromkeys(data["families"])),
        )


class ResolveNoteForm(forms.Form):
    note = forms.CharField(required=False, max_length=NOTE_MAX)
