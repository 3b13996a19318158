"""The auditors' pages: session history, execution log (and its CSV), record lookup.

One function view per page. Each list page renders its ``results`` fragment alone when HTMX
asks (filters and pager swap the list in place) and the whole page otherwise, so every page
works without JavaScript. Reads go through ``selectors``. Every view checks its permission
itself (``views.access``): anonymous users are sent to the login page, logged-in users
without the permission get a 403 page naming the role they need. The quarantine's pages are
in ``audit_quarantine``. The lookup page names the fields each update changed; their values
before and after are shown only to users with ``see_record_values`` (operators).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from migrationsapp.selectors.history import (
    BadCursorError,
    known_entities,
    log_export_rows,
    log_page,
    session_history,
)
from migrationsapp.selectors.records import record_history, similar_keys

from .access import permission_required
from .audit_csv import LOG_HEADER, csv_export, log_row
from .audit_forms import LogFilterForm, LookupForm, SessionFilterForm


def list_page(request: HttpRequest, template: str, form, read) -> HttpResponse:
    """Render a filtered keyset list: the fragment for HTMX, the page otherwise.

    ``form`` holds the filters from the query string; ``read(filters=…, after=…)`` returns
    the page after the cursor. A cursor this site did not write answers 400.
    """
    context = {"form": form, "entities": known_entities(), "page": None}
    status = 200
    if form.is_valid():
        try:
            context["page"] = read(filters=form.filters(), after=request.GET.get("after") or None)
        except BadCursorError as exc:
            context["cursor_error"] = str(exc)
            status = 400
    name = f"{template}#results" if request.htmx else template
    return render(request, name, context, status=status)


@permission_required("migrationsapp.view_migrationstatus")
@require_GET
@vary_on_headers("HX-Request")
def history(request: HttpRequest) -> HttpResponse:
    return list_page(request, "audit/history.html", SessionFilterForm(request.GET), session_history)


@permission_required("migrationsapp.view_migrationexecutionlog")
@require_GET
@vary_on_headers("HX-Request")
def logs(request: HttpRequest) -> HttpResponse:
    return list_page(request, "audit/logs.html", LogFilterForm(request.GET), log_page)


@permission_required("migrationsapp.view_migrationexecutionlog")
@require_GET
def logs_csv(request: HttpRequest) -> HttpResponse:
    return csv_export(
        request,
        form_class=LogFilterForm,
        read=log_export_rows,
        row=log_row,
        header=LOG_HEADER,
        filename="diffmig-logs.csv",
    )


@permission_required("migrationsapp.view_recordmap", "migrationsapp.view_recordevent")
@require_GET
@vary_on_headers("HX-Request")
def lookup(request: HttpRequest) -> HttpResponse:
    asked = "entity" in request.GET or "key" in request.GET
    form = LookupForm(request.GET) if asked else LookupForm()
    record = None
    suggestions: list[str] = []
    if asked and form.is_valid():
        entity, key = form.cleaned_data["entity"], form.cleaned_data["key"]
        record = record_history(entity=entity, key_text=key)
        if not (record.found or record.quarantine_entries):
            suggestions = similar_keys(entity=entity, key_text=key)
    context = {
        "form": form,
        "record": record,
        "suggestions": suggestions,
        # The values an update changed are data: names for every reader, values for some.
        "show_values": request.user.has_perm("migrationsapp.see_record_values"),
    }
    name = "audit/lookup.html#results" if request.htmx else "audit/lookup.html"
    return render(request, name, context)
