"""Connections admin: the password is write-only and never leaves the server.

The list and the pages show whether a password is stored, never the password nor its
ciphertext. The form (``forms.connections.ConnectionForm``, the pages' too) keeps the
password write-only and checks a literal URL against the connection policy. Saving goes
through ``services.connections.save_connection``, which encrypts the password and clears it
when the host or database changes.
"""

from __future__ import annotations

from django.contrib import admin, messages

from migrationsapp.forms.connections import ConnectionForm
from migrationsapp.models import Connection
from migrationsapp.services.connections import save_connection

from .base import WriteGuardMixin

PASSWORD_FIELDS = ("password", "clear_password")


@admin.register(Connection)
class ConnectionAdmin(WriteGuardMixin, admin.ModelAdmin):
    form = ConnectionForm
    list_display = ("name", "host", "database", "timezone", "schema", "password_set")
    search_fields = ("name",)
    ordering = ("name",)

    @admin.display(description="password set")
    def password_set(self, obj: Connection) -> str:
        return "yes" if obj.has_password else "no"

    def get_fields(self, request, obj=None):
        fields = ["name", "url", "timezone", "schema"]
        # The write-only fields exist only for whoever may write; a viewer sees "password set".
        if obj is None and self.has_add_permission(request):
            fields.append("password")
        elif obj is not None and self.has_change_permission(request, obj):
            fields.extend(PASSWORD_FIELDS)
        if obj is not None:
            fields.extend(["password_set", "created_at", "updated_at"])
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # Mappings name their connections: a rename would silently orphan them.
        return ("name", "password_set", "created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        had_password = (
            change and Connection.objects.filter(pk=obj.pk).exclude(password_encrypted="").exists()
        )
        saved = save_connection(
            name=obj.name,
            url=obj.url,
            timezone=obj.timezone,
            schema=obj.schema,
            password=form.password_to_store,
            actor=request.user.get_username(),
        )
        # The admin logs and redirects with the instance it holds: make it the stored row.
        obj.pk = saved.pk
        obj.password_encrypted = saved.password_encrypted
        obj.created_at = saved.created_at
        obj.updated_at = saved.updated_at
        obj._state.adding = False
        if had_password and not saved.has_password and form.password_to_store is None:
            messages.warning(
                request,
                "The stored password was cleared: the connection now points elsewhere "
                "(host, port or database changed). Type the password again.",
            )
