"""The quarantine pages: the triage list (groups, rows with their quarantined children), its
CSV export, and the operators' actions (retry, resolve with a note) on one entry or in bulk.

Reads go through ``selectors.quarantine``, actions through ``services.quarantine``. An action
answers HTMX with the fragment it changed (the row, or the whole results for a bulk action,
read again under the filters of the page it came from) and a plain form post with a redirect
back to the list as it was filtered, with the outcome as a message.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from migrationsapp.models import QuarantinedRecord
from migrationsapp.selectors.history import BadCursorError, known_entities
from migrationsapp.selectors.quarantine import (
    quarantine_export_rows,
    quarantine_groups,
    quarantine_page,
    quarantine_rows,
    quarantine_rules,
)
from migrationsapp.services.quarantine import (
    QuarantineActionError,
    resolve_quarantined_record,
    resolve_quarantined_records,
    retry_quarantined_record,
    retry_quarantined_records,
)

from .access import permission_required
from .audit_csv import QUARANTINE_HEADER, csv_export, quarantine_row
from .audit_forms import QuarantineBulkForm, QuarantineFilterForm, ResolveNoteForm, group_token

VIEW = "migrationsapp.view_quarantinedrecord"
CHANGE = "migrationsapp.change_quarantinedrecord"
TEMPLATE = "audit/quarantine.html"


def _results_context(params: QueryDict, *, next_url: str) -> tuple[dict, int]:
    """The list (and, on its first page, the groups) under the filters in ``params``."""
    form = QuarantineFilterForm(params)
    context = {
        "form": form,
        "page": None,
        "groups": None,
        "next_url": next_url,
    }
    status = 200
    if form.is_valid():
        filters = form.filters()
        after = params.get("after") or None
        try:
            context["page"] = quarantine_page(filters=filters, after=after)
        except BadCursorError as exc:
            context["cursor_error"] = str(exc)
            status = 400
        else:
            if context["page"].is_first:
                summary = quarantine_groups(filters=filters)
                context["groups"] = summary
                context["group_rows"] = [
                    (group, group_token(group.entity, group.rule, group.field))
                    for group in summary.groups
                ]
        context.update(parent=filters.parent, state=filters.state, session_filter=filters.session)
    return context, status


@permission_required(VIEW)
@require_GET
@vary_on_headers("HX-Request")
def quarantine(request: HttpRequest) -> HttpResponse:
    context, status = _results_context(request.GET, next_url=request.get_full_path())
    context.update(entities=known_entities(), rules=quarantine_rules())
    name = f"{TEMPLATE}#results" if request.htmx else TEMPLATE
    return render(request, name, context, status=status)


@permission_required(VIEW)
@require_GET
def quarantine_csv(request: HttpRequest) -> HttpResponse:
    return csv_export(
        request,
        form_class=QuarantineFilterForm,
        read=quarantine_export_rows,
        row=quarantine_row,
        header=QUARANTINE_HEADER,
        filename="diffmig-quarantine.csv",
    )


def _back_to_list(request: HttpRequest) -> str:
    """Where an action returns: the list as it was filtered (on this site), or the default."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("audit:quarantine")


def _htmx_list_url(request: HttpRequest) -> str:
    """The page an HTMX action came from, as a path on this site (its filters matter)."""
    current = request.htmx.current_url_abs_path or ""
    if current.startswith(reverse("audit:quarantine")):
        return current
    return _back_to_list(request)


def _entry_action(request: HttpRequest, pk: int, act, done: str) -> HttpResponse:
    entry = get_object_or_404(QuarantinedRecord, pk=pk)
    try:
        entry = act(entry)
        notice, failed = f"{entry.entity_type} {entry.legacy_key_text}: {done}.", False
    except QuarantineActionError as exc:
        entry.refresh_from_db()
        notice, failed = str(exc), True
    if request.htmx:
        # The row alone, in its new state; the notice shows inside it.
        context = {
            "row": quarantine_rows([entry])[0],
            "notice": notice,
            "notice_failed": failed,
            "next_url": _htmx_list_url(request),
        }
        return render(request, f"{TEMPLATE}#entry-row", context)
    (messages.error if failed else messages.success)(request, notice)
    return HttpResponseRedirect(_back_to_list(request))


@permission_required(CHANGE)
@require_POST
def quarantine_retry(request: HttpRequest, pk: int) -> HttpResponse:
    return _entry_action(
        request,
        pk,
        lambda entry: retry_quarantined_record(entry_id=entry.pk, user=request.user),
        "will be tried again on the next run",
    )


@permission_required(CHANGE)
@require_POST
def quarantine_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    form = ResolveNoteForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else request.POST.get("note", "")
    return _entry_action(
        request,
        pk,
        lambda entry: resolve_quarantined_record(entry_id=entry.pk, user=request.user, note=note),
        "marked resolved",
    )


@permission_required(CHANGE)
@require_POST
def quarantine_bulk(request: HttpRequest) -> HttpResponse:
    form = QuarantineBulkForm(request.POST)
    if form.is_valid():
        selection = form.selection()
        note = form.cleaned_data["note"]
        try:
            if form.cleaned_data["action"] == QuarantineBulkForm.RESOLVE:
                outcome = resolve_quarantined_records(
                    selection=selection, user=request.user, note=note
                )
                notice, failed = outcome.summary("marked resolved"), False
            else:
                outcome = retry_quarantined_records(
                    selection=selection, user=request.user, note=note
                )
                notice, failed = outcome.summary("will be tried again on the next run"), False
        except QuarantineActionError as exc:
            notice, failed = str(exc), True
    else:
        problems = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
        notice, failed = f"nothing done: {problems}", True
    if request.htmx:
        current = _htmx_list_url(request)
        params = QueryDict(urlsplit(current).query)
        # The fragment's links (pager, export) are built from request.GET by {% querystring %}:
        # they must carry the filters of the list the action came from, not the POST's.
        request.GET = params
        context, status = _results_context(params, next_url=current)
        context.update(bulk_notice=notice, bulk_failed=failed)
        if failed:
            # Keep what was typed, so that a missing note does not cost the selection.
            context.update(
                kept_note=request.POST.get("note", ""),
                kept_ids=set(request.POST.getlist("ids")),
                kept_groups=set(request.POST.getlist("groups")),
                kept_families=set(request.POST.getlist("families")),
            )
        return render(request, f"{TEMPLATE}#results", context, status=status)
    (messages.error if failed else messages.success)(request, notice)
    return HttpResponseRedirect(_back_to_list(request))
