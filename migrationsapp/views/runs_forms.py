"""The launch forms: what to run (step 1, analysed first) and its confirmation (step 2)."""

from __future__ import annotations

from collections.abc import Sequence

from django import forms

from migrationsapp.engine.ports import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE

BASELINE = "baseline"
DIFFERENTIAL = "differential"


class LaunchForm(forms.Form):
    """Entities (none ticked: all), mode, dry run and batch size."""

    entities = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every entity. The entities they depend on are added.",
    )
    mode = forms.ChoiceField(
        choices=[
            (DIFFERENTIAL, "Differential: only what changed"),
            (BASELINE, "Baseline: every source record"),
        ],
        initial=DIFFERENTIAL,
        widget=forms.RadioSelect,
    )
    dry_run = forms.BooleanField(required=False, label="Dry run (write nothing)")
    batch_size = forms.IntegerField(
        min_value=1, max_value=MAX_BATCH_SIZE, initial=DEFAULT_BATCH_SIZE
    )

    def __init__(self, *args, choices: Sequence[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["entities"].choices = [(name, name) for name in choices]

    @property
    def baseline(self) -> bool:
        return self.cleaned_data["mode"] == BASELINE


class ConfirmLaunchForm(LaunchForm):
    """Step 2: the same choices plus the delete counts the operator saw, one per entity.

    ``deletes_<entity>`` travels as a hidden field from the analysis; a run whose analysis
    then finds more deletes for an entity refuses that entity. Deletes need an explicit tick.
    """

    confirm_deletes = forms.BooleanField(required=False)

    def __init__(self, *args, run_entities: Sequence[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.run_entities = list(run_entities)
        for name in self.run_entities:
            self.fields[f"deletes_{name}"] = forms.IntegerField(
                min_value=0,
                widget=forms.HiddenInput,
                error_messages={"required": "Analyse first: the launch needs the analysis."},
            )

    def clean(self) -> dict:
        data = super().clean()
        if self.errors:
            return data
        if any(self.confirmed_deletes().values()) and not data.get("confirm_deletes"):
            self.add_error("confirm_deletes", "Tick the box to confirm the deletes.")
        return data

    def confirmed_deletes(self) -> dict[str, int]:
        return {name: self.cleaned_data[f"deletes_{name}"] for name in self.run_entities}
