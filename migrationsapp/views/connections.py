"""The connections pages: the list, one connection, new and edit, and its Test button.

Every role reads (the password never shows: only whether one is stored); mapping editors
add, change and test connections, through the admin's form and ``services.connections.
save_connection`` (the same policy, the same write-only password). Test connects, shows the
server version or the exact error, and keeps the result on the connection, which every role
reads (``diffmig connections test`` tests them from a shell).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.models import Connection
from migrationsapp.selectors.connections import connection_row, connection_rows
from migrationsapp.services.connections import save_connection
from migrationsapp.services.connectivity import test_and_record_connection

from .access import permission_required
from .connections_forms import EditConnectionForm, NewConnectionForm

VIEW = "migrationsapp.view_connection"
ADD = "migrationsapp.add_connection"
CHANGE = "migrationsapp.change_connection"
MOVED = (
    "The stored password was cleared: the connection now points elsewhere "
    "(host, port or database changed). Type the password again."
)


@permission_required(VIEW)
@require_GET
def connection_list(request: HttpRequest) -> HttpResponse:
    context = {
        "rows": connection_rows(),
        "can_add": request.user.has_perm(ADD),
        "can_test": request.user.has_perm(CHANGE),
    }
    return render(request, "connections/list.html", context)


@permission_required(VIEW)
@require_GET
def detail(request: HttpRequest, name: str) -> HttpResponse:
    connection = get_object_or_404(Connection, name=name)
    context = {
        "row": connection_row(connection),
        "c": connection,
        "can_change": request.user.has_perm(CHANGE),
        "can_test": request.user.has_perm(CHANGE),
    }
    return render(request, "connections/detail.html", context)


def _save(
    request: HttpRequest, form, name: str, existing: Connection | None
) -> HttpResponse | None:
    data = form.cleaned_data
    try:
        saved = save_connection(
            name=name,
            url=data["url"],
            timezone=data["timezone"],
            schema=data["schema"],
            password=form.password_to_store,
            actor=request.user.get_username(),
        )
    except ConfigurationError as exc:
        form.add_error(None, str(exc))
        return None
    moved = existing is not None and existing.has_password and not saved.has_password
    if moved and form.password_to_store is None:
        messages.warning(request, MOVED)
    messages.success(request, f"Saved connection {saved.name}.")
    return redirect("connections:detail", name=saved.name)


@permission_required(ADD)
@require_http_methods(["GET", "POST"])
def new(request: HttpRequest) -> HttpResponse:
    form = NewConnectionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        response = _save(request, form, form.cleaned_data["name"], None)
        if response is not None:
            return response
    status = 400 if request.method == "POST" else 200
    return render(request, "connections/form.html", {"form": form, "c": None}, status=status)


@permission_required(CHANGE)
@require_http_methods(["GET", "POST"])
def edit(request: HttpRequest, name: str) -> HttpResponse:
    connection = get_object_or_404(Connection, name=name)
    form = EditConnectionForm(request.POST or None, instance=connection)
    if request.method == "POST" and form.is_valid():
        # The form's instance holds the posted values: compare with the row as stored.
        stored = Connection.objects.get(pk=connection.pk)
        response = _save(request, form, stored.name, stored)
        if response is not None:
            return response
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "c": Connection.objects.get(pk=connection.pk)}
    return render(request, "connections/form.html", context, status=status)


@permission_required(CHANGE)
@require_POST
@vary_on_headers("HX-Request")
def test(request: HttpRequest, name: str) -> HttpResponse:
    """Connect now; the result (server version or the exact error) is kept and shown."""
    connection = get_object_or_404(Connection, name=name)
    test_and_record_connection(connection.name)
    connection.refresh_from_db()
    if request.htmx:
        return render(request, "connections/_last_test.html", {"c": connection, "fresh": True})
    return redirect("connections:detail", name=connection.name)
