"""Editing a draft mapping definition: its settings, field mappings, rules and functions.

Only a draft (inactive, never activated) is editable; any other version sends the editor to
its page with the advice to clone it. The two databases are introspected once per request
(``services.introspection.introspect_tables``): source and destination cells become pickers
of the real columns, or stay free text with a warning when a database cannot be read.
"Save and validate" stores the edit and shows the importer's problems next to the rows they
name (a validation rule's on the rule's row). Beside the tables, the function library with
each function's signature and an example; below them, a preview of the stored draft.
The edit is stored by ``services.mapping_drafts.save_draft_edit`` in one transaction.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from migrationsapp.selectors.function_library import function_library
from migrationsapp.selectors.mapping_views import (
    definitions_with_rows,
    validate_definition,
)
from migrationsapp.services.introspection import introspect_tables
from migrationsapp.services.mapping_drafts import save_draft_edit
from migrationsapp.services.mapping_versions import MappingVersionError

from .access import permission_required
from .mapping_forms import DraftSettingsForm, PreviewForm, row_formsets
from .mappings import CHANGE

FROZEN = "{definition} has been active: its content cannot change. Clone it into a new draft."


@login_required
@permission_required(CHANGE, raise_exception=True)
@require_http_methods(["GET", "POST"])
def edit(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    definition = get_object_or_404(definitions_with_rows(), pk=pk)
    if not definition.is_draft:
        messages.error(request, FROZEN.format(definition=definition))
        return redirect("mappings:detail", pk=pk)
    tables = introspect_tables(definition)
    data = request.POST if request.method == "POST" else None
    form = DraftSettingsForm(data, instance=definition)
    formsets = row_formsets(data=data, definition=definition, tables=tables)
    save_error = ""
    if data is not None and form.is_valid() and all(f.is_valid() for f in formsets.values()):
        try:
            save_draft_edit(
                definition=form.instance, row_formsets=list(formsets.values()), user=request.user
            )
        except MappingVersionError as exc:
            messages.error(request, f"Not saved: {exc}")
            return redirect("mappings:detail", pk=pk)
        except IntegrityError:
            # e.g. two rows swapped their destination fields: the database refuses the
            # intermediate state; nothing of the edit was stored.
            save_error = (
                "Not saved: the database refused the rows (is a destination field or a "
                "function name used twice?). Nothing was changed."
            )
        else:
            messages.success(request, f"Saved {definition}.")
            url = reverse("mappings:edit", kwargs={"pk": pk})
            return redirect(url + "?validate=1" if "validate" in request.POST else url)
    report = None
    if data is None and request.GET.get("validate"):
        report = validate_definition(definition=definition, tables=tables)
        for row_form in formsets["fields"].forms:
            row_form.problems = report.for_field(row_form.row_key)
        for row_form in formsets["rules"].forms:
            row_form.problems = report.for_rule(row_form.instance.pk)
    context = {
        "definition": definition,
        "form": form,
        "formsets": formsets,
        "tables": tables,
        "report": report,
        "save_error": save_error,
        "invalid": data is not None and not save_error,
        "library": function_library(),
        "preview_form": PreviewForm(),
    }
    status = 400 if data is not None else 200
    return render(request, "mappings/edit.html", context, status=status)
