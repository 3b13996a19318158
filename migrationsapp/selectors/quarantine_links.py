"""Which quarantined records are there only because their parent is quarantined too.

A record whose ``reference`` field names a parent that was never migrated fails with rule
``reference``; its quarantine entry keeps the reference field in ``field`` and the parent's
legacy key text in ``value`` (``engine.runner``, ``engine.selfref``). The parent's *entity*
is not on the entry: it is the ``reference`` of that field in the active mapping. So the
active mappings give a short list of links (child entity, field, parent entity), and each
link is a set-wise join: the child's ``value`` against the parent's ``legacy_key_text``,
which the unique index on open entries (entity, key) serves.

These conditions are what lets the quarantine page show a bad parent's children under it
(a count and a few keys) instead of as unrelated rows, and what lets an operator act on a
parent "with its dependants".
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db.models import Count, Exists, F, OuterRef, Q, Window
from django.db.models.functions import RowNumber

from migrationsapp.engine.mapping.spec import SELF_REFERENCE
from migrationsapp.models import FieldMapping, QuarantinedRecord

REFERENCE_RULE = "reference"


@dataclasses.dataclass(frozen=True)
class ReferenceLink:
    """Entries of ``child_entity`` refused on ``field`` name a ``parent_entity`` key."""

    child_entity: str
    field: str
    parent_entity: str


def reference_links() -> list[ReferenceLink]:
    """Every reference field of the active mappings (a small table: one query)."""
    rows = (
        FieldMapping.objects.filter(definition__is_active=True)
        .exclude(reference="")
        .values_list("definition__entity_type", "destination_field", "reference")
        .order_by("definition__entity_type", "destination_field")
    )
    return [
        ReferenceLink(child, field, child if parent == SELF_REFERENCE else parent)
        for child, field, parent in rows
    ]


def _open_children(link: ReferenceLink) -> Q:
    return Q(
        entity_type=link.child_entity,
        field=link.field,
        rule=REFERENCE_RULE,
        resolved_at__isnull=True,
    )


def has_open_parent(links: Sequence[ReferenceLink], parents: Q | None = None) -> Q | None:
    """Open entries whose missing parent has an open entry too (matching ``parents``).

    None when no mapping has a reference field: nothing can be nested.
    """
    condition: Q | None = None
    for link in links:
        parent_entries = QuarantinedRecord.objects.filter(
            entity_type=link.parent_entity,
            legacy_key_text=OuterRef("value"),
            resolved_at__isnull=True,
        )
        if link.parent_entity == link.child_entity:
            # Two records of one entity each waiting for the other would hide each other;
            # such a pair stays at the top.
            parent_entries = parent_entries.exclude(
                rule=REFERENCE_RULE, value=OuterRef("legacy_key_text")
            )
        if parents is not None:
            parent_entries = parent_entries.filter(parents)
        term = _open_children(link) & Exists(parent_entries)
        condition = term if condition is None else condition | term
    return condition


def children_of(links: Sequence[ReferenceLink], parents: Iterable[QuarantinedRecord]) -> Q | None:
    """Open entries refused because one of ``parents`` was missing (their direct children)."""
    keys: dict[str, set[str]] = defaultdict(set)
    for parent in parents:
        keys[parent.entity_type].add(parent.legacy_key_text)
    condition: Q | None = None
    for link in links:
        if link.parent_entity not in keys:
            continue
        term = _open_children(link) & Q(value__in=sorted(keys[link.parent_entity]))
        condition = term if condition is None else condition | term
    return condition


def _parent_key(link_by_child: dict[tuple[str, str], str], entry: QuarantinedRecord):
    parent_entity = link_by_child.get((entry.entity_type, entry.field))
    return None if parent_entity is None else (parent_entity, entry.value)


@dataclasses.dataclass
class Dependants:
    """A parent's direct children in quarantine: how many, and the first few."""

    count: int = 0
    first: list[QuarantinedRecord] = dataclasses.field(default_factory=list)


def dependants_of(
    links: Sequence[ReferenceLink], parents: Sequence[QuarantinedRecord], *, preview: int
) -> dict[int, Dependants]:
    """Parent entry id → its open children: a count per parent and the ``preview`` oldest.

    Only open parents have children here (a resolved entry's children are listed apart).
    Two queries, whatever the number of parents: one grouped count, one window.
    """
    open_parents = [p for p in parents if p.resolved_at is None]
    condition = children_of(links, open_parents)
    if condition is None:
        return {}
    link_by_child = {(link.child_entity, link.field): link.parent_entity for link in links}
    parent_by_key = {(p.entity_type, p.legacy_key_text): p.pk for p in open_parents}
    found: dict[int, Dependants] = {}
    counts = (
        QuarantinedRecord.objects.filter(condition)
        .values("entity_type", "field", "value")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in counts:
        parent_entity = link_by_child.get((row["entity_type"], row["field"]))
        parent_id = parent_by_key.get((parent_entity, row["value"]))
        if parent_id is not None:
            found.setdefault(parent_id, Dependants()).count += row["n"]
    if not found or preview <= 0:
        return found
    # The first few children of every parent at once: a row number within each parent key.
    ranked = (
        QuarantinedRecord.objects.filter(condition)
        .annotate(
            position=Window(
                RowNumber(),
                partition_by=[F("entity_type"), F("field"), F("value")],
                order_by=F("id").asc(),
            )
        )
        .filter(position__lte=preview)
        .order_by("id")
    )
    for child in ranked:
        key = _parent_key(link_by_child, child)
        parent_id = parent_by_key.get(key) if key else None
        if parent_id in found:
            found[parent_id].first.append(child)
    return found


def open_parents_of(
    links: Sequence[ReferenceLink], children: Sequence[QuarantinedRecord]
) -> dict[int, QuarantinedRecord]:
    """Child entry id → the open entry of its missing parent, for children shown on their own."""
    link_by_child = {(link.child_entity, link.field): link.parent_entity for link in links}
    wanted: dict[int, tuple[str, str]] = {}
    for child in children:
        if child.rule == REFERENCE_RULE and child.resolved_at is None:
            key = _parent_key(link_by_child, child)
            if key is not None:
                wanted[child.pk] = key
    if not wanted:
        return {}
    by_entity: dict[str, set[str]] = defaultdict(set)
    for entity, key_text in wanted.values():
        by_entity[entity].add(key_text)
    condition = Q()
    for entity, key_texts in by_entity.items():
        condition |= Q(entity_type=entity, legacy_key_text__in=sorted(key_texts))
    parents = {
        (p.entity_type, p.legacy_key_text): p
        for p in QuarantinedRecord.objects.filter(condition, resolved_at__isnull=True)
    }
    return {child_id: parents[key] for child_id, key in wanted.items() if key in parents}
