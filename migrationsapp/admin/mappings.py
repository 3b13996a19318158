"""Mapping definitions admin: edit drafts row by row, clone and activate versions.

A definition that is active or has ever been active is frozen (read-only here, for every
user): the record map names its version. Editors clone it into a new draft, edit the draft's
field mappings, validation rules and functions as table rows, then activate it. Every write
goes through ``services.mapping_versions``; the admin checks permissions, calls the service,
writes its LogEntry and says what happened.

Definitions are never deleted here: a version number must never be reused, and the next
version is the entity's highest + 1. An unwanted draft is simply never activated.
"""

from __future__ import annotations

from collections import Counter

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from migrationsapp.engine.errors import MappingError
from migrationsapp.forms.mapping import DefinitionForm, FieldMappingForm, ValidationRuleForm
from migrationsapp.models import (
    FieldMapping,
    SchemaMappingDefinition,
    TransformationFunction,
    ValidationRule,
)
from migrationsapp.services.mapping_versions import (
    MappingVersionError,
    clone_definition,
    create_draft_definition,
    lock_draft,
    save_draft_definition,
    switch_active_definition,
)

from .base import ReadOnlyAdmin, WriteGuardMixin, entity_filter

FROZEN_HELP = (
    "This version has been active: its content cannot change. Clone it to edit a new draft."
)


# Rows are edited inline as one line each: JSON values as one-line text, expressions small.
ROW_WIDGETS = {
    models.JSONField: {"widget": forms.TextInput(attrs={"size": 24})},
    models.TextField: {"widget": forms.Textarea(attrs={"rows": 1, "cols": 36})},
}


class DraftRowInline(admin.TabularInline):
    """Rows of a definition: editable while it is a draft, read-only once it was active."""

    extra = 1
    formfield_overrides = ROW_WIDGETS

    def has_add_permission(self, request, obj=None):
        frozen = obj is not None and not obj.is_draft
        return not frozen and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        if obj is not None and not obj.is_draft:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not obj.is_draft:
            return False
        return super().has_delete_permission(request, obj)


class FieldMappingInline(DraftRowInline):
    model = FieldMapping
    form = FieldMappingForm
    fields = FieldMappingForm.Meta.fields


class ValidationRuleInline(DraftRowInline):
    model = ValidationRule
    form = ValidationRuleForm
    fields = ("position", "field_name", "rule_type", "rule_parameters")


class TransformationFunctionInline(DraftRowInline):
    model = TransformationFunction
    fields = ("name", "function_body", "description")


@admin.register(SchemaMappingDefinition)
class SchemaMappingDefinitionAdmin(WriteGuardMixin, admin.ModelAdmin):
    form = DefinitionForm
    inlines = (FieldMappingInline, ValidationRuleInline, TransformationFunctionInline)
    list_display = (
        "entity_type",
        "version",
        "is_active",
        "activated_at",
        "source_table",
        "destination_table",
        "created_by",
        "updated_at",
    )
    list_display_links = ("entity_type", "version")
    list_filter = ("is_active", entity_filter(), "detection")
    search_fields = ("entity_type", "source_table", "destination_table")
    ordering = ("entity_type", "-version")
    actions = ("clone_selected", "activate_selected")
    change_form_template = "admin/migrationsapp/schemamappingdefinition/change_form.html"

    content_fieldsets = (
        ("Source", {"fields": ("source_connection", "source_table", "source_key", "match_on")}),
        (
            "Destination",
            {
                "fields": (
                    "destination_connection",
                    "destination_table",
                    "destination_key",
                    "depends_on",
                )
            },
        ),
        (
            "Changes and deletes",
            {
                "fields": (
                    "detection",
                    "timestamp_column",
                    "deletes",
                    "soft_delete_column",
                    "max_delete_share",
                )
            },
        ),
    )
    bookkeeping = ("version", "is_active", "activated_at", "created_by", "created_at", "updated_at")

    def get_fieldsets(self, request, obj=None):
        if obj is None:  # version and activation are assigned by the service
            return ((None, {"fields": ("entity_type", "description")}), *self.content_fieldsets)
        return (
            (
                None,
                {"fields": ("entity_type", "version", "is_active", "activated_at", "description")},
            ),
            *self.content_fieldsets,
            (
                "Bookkeeping",
                {"fields": ("created_by", "content_fingerprint", "created_at", "updated_at")},
            ),
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # A version belongs to its entity: the entity of a stored definition never changes.
        return ("entity_type", *self.bookkeeping, "content_fingerprint")

    # --- permissions ---------------------------------------------------------------

    def has_change_permission(self, request, obj=None):
        if obj is not None and not obj.is_draft:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    # --- saving through the services -------------------------------------------------

    def save_model(self, request, obj, form, change):
        try:
            if change:
                save_draft_definition(definition=obj, user=request.user)
            else:
                create_draft_definition(definition=obj, user=request.user)
        except MappingVersionError as exc:
            # Activated between the page load and this save: refuse; the view's transaction
            # rolls back, so nothing of this POST is stored.
            raise PermissionDenied(str(exc)) from exc

    def save_related(self, request, form, formsets, change):
        if change:
            try:
                # Still a draft, and locked until the view's transaction commits.
                lock_draft(definition_id=form.instance.pk)
            except MappingVersionError as exc:
                raise PermissionDenied(str(exc)) from exc
        super().save_related(request, form, formsets, change)

    # --- clone and activate: actions and per-object buttons ---------------------------

    def get_urls(self):
        info = (self.opts.app_label, self.opts.model_name)
        return [
            path(
                "<path:object_id>/clone/",
                self.admin_site.admin_view(self.clone_view),
                name="{}_{}_clone".format(*info),
            ),
            path(
                "<path:object_id>/activate/",
                self.admin_site.admin_view(self.activate_view),
                name="{}_{}_activate".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = {
            "can_manage_versions": self.has_change_permission(request),
            "frozen_help": FROZEN_HELP,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def clone_view(self, request, object_id):
        return self._version_view(request, object_id, self._clone)  # then the new draft's page

    def activate_view(self, request, object_id):
        return self._version_view(request, object_id, self._activate)

    def _version_view(self, request, object_id, act):
        """A POST on one version: ``act`` on it, then the change page of the version it
        returns."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        definition = self._object_for_action(request, object_id)
        if definition is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        shown = act(request, definition)
        return HttpResponseRedirect(
            reverse("admin:migrationsapp_schemamappingdefinition_change", args=[shown.pk])
        )

    @admin.action(permissions=["change"], description="Clone into a new draft version")
    def clone_selected(self, request, queryset):
        for definition in queryset.order_by("entity_type", "version"):
            self._clone(request, definition)

    @admin.action(permissions=["change"], description="Activate (one version per entity)")
    def activate_selected(self, request, queryset):
        definitions = list(queryset.order_by("entity_type", "version"))
        repeated = sorted(
            e for e, n in Counter(d.entity_type for d in definitions).items() if n > 1
        )
        if repeated:
            self.message_user(
                request,
                f"Select one version per entity to activate ({', '.join(repeated)} had more). "
                "Nothing was activated.",
                messages.ERROR,
            )
            return
        for definition in definitions:
            self._activate(request, definition)

    def _object_for_action(self, request, object_id) -> SchemaMappingDefinition | None:
        # Model-level change permission: cloning a frozen version is how it gets edited.
        if not self.has_change_permission(request):
            raise PermissionDenied
        return self.get_object(request, unquote(object_id))

    def _clone(self, request, definition: SchemaMappingDefinition) -> SchemaMappingDefinition:
        clone = clone_definition(definition_id=definition.pk, user=request.user)
        what = f"cloned {definition.entity_type} v{definition.version} → v{clone.version}"
        self.log_addition(request, clone, what)
        self.message_user(request, f"{what} (an inactive draft).", messages.SUCCESS)
        return clone

    def _activate(self, request, definition: SchemaMappingDefinition) -> SchemaMappingDefinition:
        """Activate ``definition`` (or say why not); it is the page to show after."""
        try:
            # The same checks as the import and the web editor's activation: both databases.
            result = switch_active_definition(
                definition_id=definition.pk, user=request.user, check_databases=True
            )
        except (MappingVersionError, MappingError) as exc:
            self.message_user(request, f"Not activated: {definition}: {exc}", messages.ERROR)
            return definition
        activated, previous = result.activated, result.deactivated
        what = f"activated {activated.entity_type} v{activated.version}"
        if previous is not None:
            what += f" (replacing v{previous.version})"
            self.log_change(
                request,
                previous,
                f"deactivated {previous.entity_type} v{previous.version} "
                f"(v{activated.version} activated)",
            )
        self.log_change(request, activated, what)
        self.message_user(request, f"{what}.", messages.SUCCESS)
        return definition


class DefinitionRowAdmin(ReadOnlyAdmin):
    """Rows browsed across definitions; they are edited inline on their definition's page,
    the one place that enforces that a once-active version never changes."""

    list_select_related = ("definition",)
    raw_id_fields = ("definition",)
    list_filter = (entity_filter("definition__entity_type"), "definition__is_active")
    search_help_text = "Exact match on the name."


@admin.register(FieldMapping)
class FieldMappingAdmin(DefinitionRowAdmin):
    list_display = ("definition", "position", "source_field", "destination_field", "transformation")
    exact_search_fields = ("destination_field", "source_field")
    ordering = ("definition__entity_type", "-definition__version", "position")


@admin.register(ValidationRule)
class ValidationRuleAdmin(DefinitionRowAdmin):
    list_display = ("definition", "position", "field_name", "rule_type", "rule_parameters")
    exact_search_fields = ("field_name",)
    ordering = ("definition__entity_type", "-definition__version", "position")


@admin.register(TransformationFunction)
class TransformationFunctionAdmin(DefinitionRowAdmin):
    list_display = ("definition", "name", "function_body")
    exact_search_fields = ("name",)
    ordering = ("definition__entity_type", "-definition__version", "name")
