"""Shared admin pieces: read-only lists of huge tables, exact search, cheap filters.

The log, the record map and the record events grow by millions of rows. The stock admin
would run ``COUNT(*)`` twice per page, ``SELECT DISTINCT`` for every field filter and
``UPPER(col) LIKE '%…%'`` for every search — each a full scan. Here:

* ``EstimatedCountPaginator`` counts with the planner's estimate on unfiltered PostgreSQL
  lists and otherwise counts at most ``COUNT_CAP`` rows; ``show_full_result_count`` is off.
* search is exact (``=``) on key text, entity and ids — what an auditor pastes — so that it
  can use the indexes;
* the entity filter takes its choices from the (small) mapping definitions table.
"""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.utils.functional import cached_property

from migrationsapp.models import SchemaMappingDefinition

# Unfiltered lists trust the planner's estimate from this size on; below it and for any
# filtered list, counting stops after this many rows (the page says "10000+").
COUNT_CAP = 10_000


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a whole big table.

    ``count_kind`` tells the pagination template how to print the count: ``exact``,
    ``estimate`` (pg_class.reltuples, refreshed by autovacuum/ANALYZE) or ``at_least``.
    """

    count_cap = COUNT_CAP
    count_kind = "exact"

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            estimate = _estimated_rows(queryset)
            if estimate >= self.count_cap:
                self.count_kind = "estimate"
                return estimate
        # COUNT(*) over a LIMITed subquery: reads at most count_cap + 1 rows.
        counted = queryset.order_by()[: self.count_cap + 1].count()
        if counted > self.count_cap:
            self.count_kind = "at_least"
            return self.count_cap
        return counted


def _estimated_rows(queryset) -> int:
    """The planner's row estimate of the queryset's table; -1 when there is none."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return -1
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table]
        )
        row = cursor.fetchone()
    # reltuples is -1 for a table never vacuumed or analysed.
    return int(row[0]) if row and row[0] is not None else -1


class WriteGuardMixin:
    """A changelist POST (actions, list edits) needs a write permission, else 403.

    Stock Django answers a view-only user's action POST with the list page again; a plain
    refusal is easier to reason about and to test.
    """

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST" and not (
            self.has_change_permission(request) or self.has_delete_permission(request)
        ):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)


class ExactSearchMixin:
    """Search by exact value on indexed columns instead of ``icontains`` on every row.

    ``exact_search_fields`` are compared as text; ``uuid_search_fields`` only when the term
    is a UUID. Keys compare exactly (docs/mapping.md), so ``1007/3`` finds that key only.
    """

    exact_search_fields: tuple[str, ...] = ()
    uuid_search_fields: tuple[str, ...] = ()

    def get_search_fields(self, request):
        return (*self.exact_search_fields, *self.uuid_search_fields)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        # Trailing spaces can be part of a legacy key: try the term as typed and trimmed.
        texts = {search_term, term}
        condition = Q()
        for name in self.exact_search_fields:
            for text in texts:
                condition |= Q(**{name: text})
        try:
            as_uuid = uuid.UUID(term)
        except ValueError:
            as_uuid = None
        if as_uuid is not None:
            for name in self.uuid_search_fields:
                condition |= Q(**{name: as_uuid})
        if not condition:
            return queryset.none(), False
        return queryset.filter(condition), False


def entity_filter(field: str = "entity_type") -> type[admin.SimpleListFilter]:
    """A list filter on an entity column whose choices come from the mapping definitions."""

    class EntityFilter(admin.SimpleListFilter):
        title = "entity"
        parameter_name = "entity"

        def lookups(self, request, model_admin):
            names = (
                SchemaMappingDefinition.objects.order_by("entity_type")
                .values_list("entity_type", flat=True)
                .distinct()
            )
            return [(name, name) for name in names]

        def queryset(self, request, queryset):
            if self.value():
                return queryset.filter(**{field: self.value()})
            return queryset

    return EntityFilter


@admin.display(description="session")
def session_column(obj) -> uuid.UUID | None:
    """A row's session for a list column, from its FK column (the session's id): no join."""
    return obj.session_id


class ReadOnlyAdmin(WriteGuardMixin, ExactSearchMixin, admin.ModelAdmin):
    """What the engine writes: viewable by whoever holds ``view``, changed by nobody here.

    Not even a superuser adds or edits a log line or a record event in the admin: they are
    the audit trail, and only the engine's services write them.
    """

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    actions = None
    search_help_text = (
        "Exact match: a legacy key as text (e.g. 1007/3), an entity, or an id (UUID)."
    )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
