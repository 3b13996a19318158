"""The schedule form: a name, the entities (none ticked: all), every N hours or a cron line."""

from __future__ import annotations

from collections.abc import Sequence

from django import forms

from migrationsapp.services.run_schedules import MAX_INTERVAL_HOURS


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=100)
    entities = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every entity. The entities they depend on are added.",
    )
    interval_hours = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_INTERVAL_HOURS, label="Every N hours"
    )
    cron = forms.CharField(
        required=False,
        max_length=100,
        label="or a cron expression (UTC)",
        help_text="Five fields: minute hour day month weekday. 0 2 * * * is 2 am every day.",
    )

    def __init__(self, *args, choices: Sequence[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["entities"].choices = [(name, name) for name in choices]
