"""The auditors' pages: session history, execution log (and its CSV), record lookup, quarantine.

One function view per page. Each list page renders its ``results`` fragment alone when HTMX
asks (filters and pager swap the list in place) and the whole page otherwise, so every page
works without JavaScript. Reads go through ``selectors``; the two quarantine actions through
``services.quarantine``. Every view checks its permission itself: anonymous users are sent
to the login page, logged-in users without the permission get 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from migrationsapp.models import QuarantinedRecord
from migrationsapp.selectors.history import (
    BadCursorError,
    known_entities,
    log_export_rows,
    log_page,
    session_history,
)
from migrationsapp.selectors.quarantine import quarantine_page, quarantine_rules
from migrationsapp.selectors.records import record_history
from migrationsapp.services.quarantine import (
    QuarantineActionError,
    resolve_quarantined_record,
    retry_quarantined_record,
)

from .audit_csv import csv_lines
from .audit_forms import LogFilterForm, LookupForm, QuarantineFilterForm, SessionFilterForm


def _list_page(request: HttpRequest, template: str, context: dict, read) -> HttpResponse:
    """Render a filtered keyset list: the fragment for HTMX, the page otherwise.

    ``read(after)`` returns the page; a cursor this site did not write answers 400.
    """
    form = context["form"]
    status = 200
    context["page"] = None
    if form.is_valid():
        try:
            context["page"] = read(request.GET.get("after") or None)
        except BadCursorError as exc:
            context["cursor_error"] = str(exc)
            status = 400
    name = f"{template}#results" if request.htmx else template
    return render(request, name, context, status=status)


@login_required
@permission_required("migrationsapp.view_migrationstatus", raise_exception=True)
@require_GET
@vary_on_headers("HX-Request")
def history(request: HttpRequest) -> HttpResponse:
    form = SessionFilterForm(request.GET)
    context = {"form": form, "entities": known_entities()}
    return _list_page(
        request,
        "audit/history.html",
        context,
        lambda after: session_history(filters=form.filters(), after=after),
    )


@login_required
@permission_required("migrationsapp.view_migrationexecutionlog", raise_exception=True)
@require_GET
@vary_on_headers("HX-Request")
def logs(request: HttpRequest) -> HttpResponse:
    form = LogFilterForm(request.GET)
    context = {"form": form, "entities": known_entities()}
    return _list_page(
        request,
        "audit/logs.html",
        context,
        lambda after: log_page(filters=form.filters(), after=after),
    )


@login_required
@permission_required("migrationsapp.view_migrationexecutionlog", raise_exception=True)
@require_GET
def logs_csv(request: HttpRequest) -> HttpResponse:
    form = LogFilterForm(request.GET)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
        return HttpResponse(
            f"bad filter: {problems}", status=400, content_type="text/plain; charset=utf-8"
        )
    response = StreamingHttpResponse(
        csv_lines(log_export_rows(filters=form.filters())),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = 'attachment; filename="diffmig-logs.csv"'
    return response


@login_required
@permission_required(
    ("migrationsapp.view_recordmap", "migrationsapp.view_recordevent"), raise_exception=True
)
@require_GET
@vary_on_headers("HX-Request")
def lookup(request: HttpRequest) -> HttpResponse:
    asked = "entity" in request.GET or "key" in request.GET
    form = LookupForm(request.GET) if asked else LookupForm()
    record = None
    if asked and form.is_valid():
        record = record_history(
            entity=form.cleaned_data["entity"], key_text=form.cleaned_data["key"]
        )
    context = {"form": form, "record": record, "entities": known_entities()}
    name = "audit/lookup.html#results" if request.htmx else "audit/lookup.html"
    return render(request, name, context)


@login_required
@permission_required("migrationsapp.view_quarantinedrecord", raise_exception=True)
@require_GET
@vary_on_headers("HX-Request")
def quarantine(request: HttpRequest) -> HttpResponse:
    form = QuarantineFilterForm(request.GET)
    context = {
        "form": form,
        "entities": known_entities(),
        "rules": quarantine_rules(),
        "next_url": request.get_full_path(),
    }
    return _list_page(
        request,
        "audit/quarantine.html",
        context,
        lambda after: quarantine_page(filters=form.filters(), after=after),
    )


def _back_to_list(request: HttpRequest) -> str:
    """Where a non-HTMX action returns: the list as it was filtered, or the default list."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("audit:quarantine")


def _quarantine_action(request: HttpRequest, pk: int, action, done: str) -> HttpResponse:
    entry = get_object_or_404(QuarantinedRecord, pk=pk)
    try:
        entry = action(entry_id=entry.pk, user=request.user)
        notice, failed = f"{entry.entity_type} {entry.legacy_key_text}: {done}.", False
    except QuarantineActionError as exc:
        entry.refresh_from_db()
        notice, failed = str(exc), True
    if request.htmx:
        # The row alone, in its new state; the notice shows inside it.
        context = {
            "entry": entry,
            "notice": notice,
            "notice_failed": failed,
            "next_url": request.htmx.current_url_abs_path or reverse("audit:quarantine"),
        }
        return render(request, "audit/quarantine.html#entry-row", context)
    (messages.error if failed else messages.success)(request, notice)
    return HttpResponseRedirect(_back_to_list(request))


@login_required
@permission_required("migrationsapp.change_quarantinedrecord", raise_exception=True)
@require_POST
def quarantine_retry(request: HttpRequest, pk: int) -> HttpResponse:
    return _quarantine_action(
        request, pk, retry_quarantined_record, "will be tried again on the next run"
    )


@login_required
@permission_required("migrationsapp.change_quarantinedrecord", raise_exception=True)
@require_POST
def quarantine_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    return _quarantine_action(request, pk, resolve_quarantined_record, "marked resolved")
