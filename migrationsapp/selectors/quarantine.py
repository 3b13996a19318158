"""Reads of the quarantine for its page, its groups and its CSV export.

* The list: open entries by default, newest first, by keyset (never OFFSET, never a COUNT of
  the table). A record refused only because its parent is quarantined too is not a row of
  its own: it is counted (with its first few keys) under its parent's row
  (``selectors.quarantine_links``). ``parent=<id>`` lists one parent's children.
* The groups: entries by entity, rule and field with their counts, read from at most
  ``GROUP_SCAN_LIMIT`` entries (newest first), so that a huge quarantine still answers at
  once; the page then says that the counts are "at least".
* The export: every matching entry, oldest first, in keyset chunks.

An open entry whose ``content_hash`` is empty is one an operator asked to retry on the next
run (``services.quarantine.retry_quarantined_record``): the next analysis sees it as changed.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Sequence

from django.db.models import Count, Q, QuerySet

from migrationsapp.models import QuarantinedRecord
from migrationsapp.models.choices import ValidationRuleType
from migrationsapp.selectors.history import EXPORT_CHUNK, PAGE_SIZE, Page, export_rows, id_page
from migrationsapp.selectors.quarantine_links import (
    Dependants,
    ReferenceLink,
    children_of,
    dependants_of,
    has_open_parent,
    open_parents_of,
    reference_links,
)

OPEN, RESOLVED, ALL = "open", "resolved", "all"
STATES = (OPEN, RESOLVED, ALL)
GROUP_SCAN_LIMIT = 100_000
CHILD_PREVIEW = 5


@dataclasses.dataclass(frozen=True)
class QuarantineFilters:
    entity: str | None = None
    rule: str | None = None
    field: str | None = None
    state: str = OPEN
    parent: QuarantinedRecord | None = None  # list the children of this entry
    session: uuid.UUID | None = None  # entries the session last refused (its Failed tile)


def is_retry_requested(entry: QuarantinedRecord) -> bool:
    """True for an open entry that an operator marked "retry on next run"."""
    return entry.resolved_at is None and entry.content_hash == ""


def state_label(entry: QuarantinedRecord) -> str:
    if entry.resolved_at is not None:
        return "resolved"
    return "retry requested" if is_retry_requested(entry) else "open"


def _state_q(state: str) -> Q:
    if state == OPEN:
        return Q(resolved_at__isnull=True)
    if state == RESOLVED:
        return Q(resolved_at__isnull=False)
    return Q()


def _match_q(filters: QuarantineFilters, links: Sequence[ReferenceLink]) -> Q:
    """The filters other than the state, as one condition (also applied to parents)."""
    condition = Q()
    if filters.entity:
        condition &= Q(entity_type=filters.entity)
    if filters.rule:
        condition &= Q(rule=filters.rule)
    if filters.field:
        condition &= Q(field=filters.field)
    if filters.session is not None:
        condition &= Q(last_session_id=filters.session)
    if filters.parent is not None:
        children = children_of(links, [filters.parent])
        condition &= children if children is not None else Q(pk__in=[])
    return condition


def filtered_quarantine(
    filters: QuarantineFilters, links: Sequence[ReferenceLink] | None = None
) -> QuerySet[QuarantinedRecord]:
    """Every entry the filters match (nested children included)."""
    if links is None:
        links = reference_links() if filters.parent is not None else []
    return QuarantinedRecord.objects.filter(_state_q(filters.state), _match_q(filters, links))


@dataclasses.dataclass(frozen=True)
class QuarantineRow:
    """One row of the list: the entry, its quarantined children, its quarantined parent."""

    entry: QuarantinedRecord
    dependants: Dependants = dataclasses.field(default_factory=Dependants)
    parent: QuarantinedRecord | None = None  # its missing parent's open entry, when shown apart

    @property
    def state(self) -> str:
        return state_label(self.entry)


def quarantine_rows(
    entries: Sequence[QuarantinedRecord], links: Sequence[ReferenceLink] | None = None
) -> list[QuarantineRow]:
    """The entries with their dependants and quarantined parents (a few queries in all)."""
    if links is None:
        links = reference_links()
    dependants = dependants_of(links, entries, preview=CHILD_PREVIEW)
    parents = open_parents_of(links, entries)
    return [
        QuarantineRow(
            entry=entry,
            dependants=dependants.get(entry.pk, Dependants()),
            parent=parents.get(entry.pk),
        )
        for entry in entries
    ]


def quarantine_page(
    *, filters: QuarantineFilters, after: str | None = None, size: int = PAGE_SIZE
) -> Page[QuarantineRow]:
    """Top-level entries newest first (by id), ``size`` at a time, older than the last id shown.

    An open entry whose missing parent is open in quarantine and would be listed by the same
    filters is left out: it shows under that parent.
    """
    links = reference_links()
    query = filtered_quarantine(filters, links)
    nested = has_open_parent(links, parents=_match_q(filters, links))
    if nested is not None:
        query = query.exclude(nested)
    page = id_page(query, after=after, size=size)
    return Page(
        items=quarantine_rows(page.items, links),
        next_cursor=page.next_cursor,
        is_first=page.is_first,
    )


@dataclasses.dataclass(frozen=True)
class QuarantineGroup:
    entity: str
    rule: str
    field: str
    count: int


@dataclasses.dataclass(frozen=True)
class GroupSummary:
    groups: list[QuarantineGroup]
    capped: bool  # more than ``limit`` entries match: the counts are lower bounds
    limit: int

    @property
    def total(self) -> int:
        return sum(group.count for group in self.groups)


def quarantine_groups(*, filters: QuarantineFilters, limit: int = GROUP_SCAN_LIMIT) -> GroupSummary:
    """Matching entries by entity, rule and field, largest group first.

    The count reads the newest ``limit + 1`` matching entries only (one grouped query over a
    bounded subquery), never the whole table.
    """
    newest = filtered_quarantine(filters).order_by("-id").values("id")[: limit + 1]
    rows = (
        QuarantinedRecord.objects.filter(id__in=newest)
        .values("entity_type", "rule", "field")
        .annotate(n=Count("id"))
        .order_by("-n", "entity_type", "rule", "field")
    )
    groups = [QuarantineGroup(r["entity_type"], r["rule"], r["field"], r["n"]) for r in rows]
    capped = sum(group.count for group in groups) > limit
    return GroupSummary(groups=groups, capped=capped, limit=limit)


def quarantine_export_rows(
    *, filters: QuarantineFilters, chunk: int = EXPORT_CHUNK
) -> Iterator[QuarantinedRecord]:
    """Every matching entry (children too), oldest first, ``chunk`` rows per query."""
    return export_rows(filtered_quarantine(filters), chunk=chunk)


def quarantine_rules() -> list[str]:
    """Rule names a quarantine entry may carry (suggestions for the filter; it takes any)."""
    return sorted(
        {*ValidationRuleType.values, "transform", "type", "reference", "unique", "delete"}
        | {"destination", "source", "match_on"}
    )
