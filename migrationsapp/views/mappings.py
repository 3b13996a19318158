"""The mapping editor's read pages and version actions: list, one definition, validate,
preview, clone, activate, diff, YAML export and import.

The friendlier twin of the admin's mapping editor, on the same services
(``services.mapping_versions``, ``services.mappings``, ``services.preview``). Reading needs
``view_schemamappingdefinition``; clone and activate need ``change_…``; import needs
``add_…`` and ``change_…`` (it stores and activates versions). Validate and preview write
nothing, so they are GETs any reader may use; with HTMX their result is swapped into the
page, without it they are pages of their own. Editing a draft lives in ``mapping_edit``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from migrationsapp.engine.errors import ConfigurationError, DiffmigError, MappingError
from migrationsapp.models import SchemaMappingDefinition
from migrationsapp.selectors.mapping_views import (
    definitions_with_rows,
    diff_definitions,
    entity_versions,
    mapping_overview,
    records_to_rewrite,
    validate_definition,
)
from migrationsapp.services.connections import hide_url_passwords
from migrationsapp.services.introspection import introspect_tables
from migrationsapp.services.mapping_versions import (
    MappingVersionError,
    activate_definition,
    clone_definition,
)
from migrationsapp.services.mappings import export_mapping_text, import_mapping_text
from migrationsapp.services.preview import preview_entity

from .access import permission_required
from .mapping_forms import ImportForm, PreviewForm

VIEW = "migrationsapp.view_schemamappingdefinition"
CHANGE = "migrationsapp.change_schemamappingdefinition"
ADD = "migrationsapp.add_schemamappingdefinition"


def _definition(pk: uuid.UUID) -> SchemaMappingDefinition:
    return get_object_or_404(definitions_with_rows(), pk=pk)


def _detail_context(request: HttpRequest, definition: SchemaMappingDefinition, report=None):
    rows = list(definition.field_mappings.all())
    return {
        "definition": definition,
        "draft": definition.is_draft,
        "can_change": request.user.has_perm(CHANGE),
        "field_rows": [
            (row, report.for_field(row.destination_field) if report else []) for row in rows
        ],
        "rule_rows": [
            (rule, report.for_rule(rule.pk) if report else [])
            for rule in definition.validation_rules.all()
        ],
        "report": report,
        "versions": entity_versions(definition.entity_type),
        "preview_form": PreviewForm(),
    }


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def mapping_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "mappings/list.html",
        {"entities": mapping_overview(), "can_change": request.user.has_perm(CHANGE)},
    )


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def detail(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    definition = _definition(pk)
    return render(request, "mappings/detail.html", _detail_context(request, definition))


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
@vary_on_headers("HX-Request")
def validate(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """The importer's checks, each problem next to the field row it names."""
    definition = _definition(pk)
    report = validate_definition(definition=definition, tables=introspect_tables(definition))
    context = _detail_context(request, definition, report)
    name = "mappings/detail.html#definition-rows" if request.htmx else "mappings/detail.html"
    return render(request, name, context)


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
@vary_on_headers("HX-Request")
def preview(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """N source rows before and after this version, failures marked on their row."""
    definition = _definition(pk)
    form = PreviewForm(request.GET)
    result, error, status = None, "", 200
    if form.is_valid():
        limit = form.cleaned_data["limit"] or 10
        try:
            result = preview_entity(
                entity=definition.entity_type, limit=limit, definition=definition
            )
        except DiffmigError as exc:
            error = str(exc)
    else:
        status = 400
    context = {"definition": definition, "form": form, "result": result, "error": error}
    name = "mappings/preview.html#preview-result" if request.htmx else "mappings/preview.html"
    return render(request, name, context, status=status)


@login_required
@permission_required(CHANGE, raise_exception=True)
@require_POST
def clone(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    definition = get_object_or_404(SchemaMappingDefinition, pk=pk)
    copy = clone_definition(definition_id=definition.pk, user=request.user)
    messages.success(
        request,
        f"Cloned {definition.entity_type} v{definition.version} into draft v{copy.version}.",
    )
    return redirect("mappings:edit", pk=copy.pk)


@login_required
@permission_required(CHANGE, raise_exception=True)
@require_GET
def activate_confirm(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    """What activating this version does, after the importer's checks on both databases."""
    definition = _definition(pk)
    report = validate_definition(definition=definition, tables=introspect_tables(definition))
    context = _detail_context(request, definition, report)
    context["records"] = records_to_rewrite(definition.entity_type)
    context["active"] = next((d for d in context["versions"] if d.is_active), None)
    return render(request, "mappings/activate.html", context)


@login_required
@permission_required(CHANGE, raise_exception=True)
@require_POST
def activate(request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
    definition = get_object_or_404(SchemaMappingDefinition, pk=pk)
    try:
        activated = activate_definition(
            definition_id=definition.pk, user=request.user, check_databases=True
        )
    except MappingError as exc:
        unplaced = [p.reason for p in exc.problems if not p.field]
        messages.error(
            request,
            f"Not activated: {definition} has {len(exc.problems)} problem(s), listed below."
            + (f" {unplaced[0]}" if unplaced else ""),
        )
        return redirect("mappings:validate", pk=pk)
    except MappingVersionError as exc:
        messages.error(request, f"Not activated: {exc}")
        return redirect("mappings:detail", pk=pk)
    messages.success(
        request,
        f"{activated.entity_type} v{activated.version} is now the active definition.",
    )
    return redirect("mappings:detail", pk=pk)


def _version_param(request: HttpRequest, name: str, default: int | None) -> int | None:
    text = request.GET.get(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise Http404(f"no version {text!r}") from exc


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def diff(request: HttpRequest, entity: str) -> HttpResponse:
    """Side by side: what changes from version ``a`` to version ``b`` of an entity."""
    versions = entity_versions(entity)
    if not versions:
        raise Http404(f"no mapping definition for {entity!r}")
    # By default: from the active version (else the newest other one) to the newest.
    b = _version_param(request, "b", versions[0].version)
    others = [v for v in versions if v.version != b] or versions
    active = next((v for v in others if v.is_active), others[0])
    a = _version_param(request, "a", active.version)
    found = {
        d.version: d for d in definitions_with_rows().filter(entity_type=entity, version__in=[a, b])
    }
    if a not in found or b not in found:
        raise Http404(f"{entity} has no version {a if a not in found else b}")
    context = {
        "entity": entity,
        "versions": versions,
        "diff": diff_definitions(a=found[a], b=found[b]),
    }
    return render(request, "mappings/diff.html", context)


@login_required
@permission_required(VIEW, raise_exception=True)
@require_GET
def export_yaml(request: HttpRequest) -> HttpResponse:
    """The active mappings as the file that ``import`` reads (``?entity=`` to choose)."""
    entities = [e for e in request.GET.getlist("entity") if e] or None
    try:
        text = export_mapping_text(entities=entities)
    except ConfigurationError as exc:
        raise Http404(str(exc)) from exc
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="diffmig-mappings.yaml"'
    return response


def _grouped(problems) -> list[tuple[str, list[tuple[str, str]]]]:
    """Problems per entity (the file's own problems first), each as (field, reason)."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for problem in problems:
        groups[problem.entity or ""].append((problem.field or "", problem.reason))
    return sorted(groups.items(), key=lambda item: (item[0] != "", item[0]))


@login_required
@permission_required((ADD, CHANGE), raise_exception=True)
@require_http_methods(["GET", "POST"])
def import_mapping(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None)
    context: dict = {"form": form, "result": None, "problems": None}
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            context["result"] = import_mapping_text(
                text=form.cleaned_data["mapping_text"],
                dry_run=form.cleaned_data["dry_run"],
                user=request.user.get_username(),
            )
        except MappingError as exc:
            context["problems"] = _grouped(exc.problems)
            status = 400
        except DiffmigError as exc:
            context["problems"] = [("", [("", str(exc))])]
            status = 400
    elif request.method == "POST":
        status = 400
    if status == 400 and request.POST.get("text"):
        # The refused text is shown again, but never the passwords its URLs hold.
        data = request.POST.copy()
        data["text"] = hide_url_passwords(data["text"])
        context["form"] = ImportForm(data, request.FILES or None)
    return render(request, "mappings/import.html", context, status=status)
