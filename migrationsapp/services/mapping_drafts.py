"""Saving an edit of a draft mapping definition: its settings and its rows, in one transaction.

The web editor edits a draft's settings (a form) and its field mappings, validation rules
and functions (one formset per table). ``save_draft_edit`` stores them together:
``services.mapping_versions.save_draft_definition`` first locks the definition and refuses
one that is (or was) active, then the rows are written under that lock, so an activation of
the same entity waits for the edit instead of activating half-edited rows. A refusal or a
database constraint (two rows for one destination field) rolls the whole edit back.

The formsets arrive validated (the view's job); they are inline formsets of this definition,
so a posted row id of another definition is refused by the formset before it gets here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.forms.models import BaseInlineFormSet

from migrationsapp.models import SchemaMappingDefinition
from migrationsapp.services.mapping_versions import save_draft_definition

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser


@transaction.atomic
def save_draft_edit(
    *,
    definition: SchemaMappingDefinition,
    row_formsets: Sequence[BaseInlineFormSet],
    user: AbstractBaseUser | None,
) -> SchemaMappingDefinition:
    """Store the edited settings and rows of a draft; ``MappingVersionError`` if frozen."""
    stored = save_draft_definition(definition=definition, user=user)
    for formset in row_formsets:
        formset.instance = stored
        formset.save()
    return stored
