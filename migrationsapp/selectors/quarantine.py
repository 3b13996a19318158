"""Reads of the quarantine for its page: open entries by default, newest first, by keyset.

An open entry whose ``content_hash`` is empty is one an operator asked to retry on the next
run (``services.quarantine.retry_quarantined_record``): the next analysis sees it as changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from migrationsapp.models import QuarantinedRecord
from migrationsapp.models.choices import ValidationRuleType
from migrationsapp.selectors.history import PAGE_SIZE, Page, id_page

OPEN, RESOLVED, ALL = "open", "resolved", "all"
STATES = (OPEN, RESOLVED, ALL)


@dataclass(frozen=True)
class QuarantineFilters:
    entity: str | None = None
    rule: str | None = None
    state: str = OPEN


def is_retry_requested(entry: QuarantinedRecord) -> bool:
    """True for an open entry that an operator marked "retry on next run"."""
    return entry.resolved_at is None and entry.content_hash == ""


def filtered_quarantine(filters: QuarantineFilters) -> QuerySet[QuarantinedRecord]:
    query = QuarantinedRecord.objects.all()
    if filters.state == OPEN:
        query = query.filter(resolved_at__isnull=True)
    elif filters.state == RESOLVED:
        query = query.filter(resolved_at__isnull=False)
    if filters.entity:
        query = query.filter(entity_type=filters.entity)
    if filters.rule:
        query = query.filter(rule=filters.rule)
    return query


def quarantine_page(
    *, filters: QuarantineFilters, after: str | None = None, size: int = PAGE_SIZE
) -> Page[QuarantinedRecord]:
    """Entries newest first (by id), ``size`` at a time, older than the last id shown."""
    return id_page(filtered_quarantine(filters), after=after, size=size)


def quarantine_rules() -> list[str]:
    """Rule names a quarantine entry may carry (suggestions for the filter; it takes any)."""
    return sorted(
        {*ValidationRuleType.values, "transform", "type", "reference", "unique", "delete"}
        | {"destination", "source", "match_on"}
    )
