"""Reads for the mapping editor pages: versions per entity, introspected columns, the
importer's checks on one stored definition, and the differences between two versions.

* ``IntrospectedTables``: the definition's two tables as their databases describe them
  (``services.introspection.introspect_tables`` reads them; a database that cannot be
  reached is a warning, not an error: the editor then offers free text instead of pickers).
* ``validate_definition`` runs the importer's checks (``engine.mapping.check_entity``, then
  ``check_against_tables`` when both tables could be introspected) and sorts each problem to
  the field row it names (``MappingProblem.field`` is a destination field); what names no row
  (the entity's settings, a NOT NULL column no field fills) is listed on top.
* ``diff_definitions`` compares two versions' settings, field mappings (by destination
  field), validation rules (by field and rule) and functions (by name).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from migrationsapp.engine.errors import MappingError, MappingProblem
from migrationsapp.engine.introspect import TableInfo
from migrationsapp.engine.mapping import EntitySpec, check_against_tables, check_entity
from migrationsapp.engine.validation import compile_rules
from migrationsapp.models import RecordMap, SchemaMappingDefinition
from migrationsapp.models.mapping import DEFINITION_SETTINGS
from migrationsapp.selectors.definitions import definition_to_entity

ROW_RELATIONS = ("field_mappings", "validation_rules", "transformation_functions")


def definitions_with_rows() -> QuerySet[SchemaMappingDefinition]:
    return SchemaMappingDefinition.objects.prefetch_related(*ROW_RELATIONS)


# --------------------------------------------------------------------------- versions


@dataclass(frozen=True)
class EntityVersions:
    entity: str
    versions: list[SchemaMappingDefinition]  # newest first

    @property
    def active(self) -> SchemaMappingDefinition | None:
        return next((d for d in self.versions if d.is_active), None)

    @property
    def latest(self) -> SchemaMappingDefinition:
        return self.versions[0]

    @property
    def others(self) -> list[SchemaMappingDefinition]:
        """Every version but the active one, newest first."""
        return [d for d in self.versions if not d.is_active]


def entity_versions(entity: str) -> list[SchemaMappingDefinition]:
    return list(SchemaMappingDefinition.objects.filter(entity_type=entity).order_by("-version"))


def mapping_overview() -> list[EntityVersions]:
    """Every entity with its versions, newest first (the definitions table is small)."""
    grouped: dict[str, list[SchemaMappingDefinition]] = defaultdict(list)
    for definition in SchemaMappingDefinition.objects.order_by("entity_type", "-version"):
        grouped[definition.entity_type].append(definition)
    return [EntityVersions(entity=name, versions=rows) for name, rows in grouped.items()]


# --------------------------------------------------------------------------- introspection


@dataclass(frozen=True)
class IntrospectedTables:
    """The definition's tables as the databases describe them, and what could not be read."""

    source: TableInfo | None
    destination: TableInfo | None
    source_reached: bool
    destination_reached: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def source_columns(self) -> list[str] | None:
        """Column names for a picker; None when unknown (free text then)."""
        return list(self.source.columns) if self.source is not None else None

    @property
    def destination_columns(self) -> list[str] | None:
        return list(self.destination.columns) if self.destination is not None else None


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class ValidationReport:
    entity_problems: list[str]  # shown on top: they name no field row
    field_problems: dict[str, list[str]]  # destination field -> reasons, shown on its row
    tables_checked: bool
    warnings: list[str] = field(default_factory=list)  # what could not be checked, and why
    rule_problems: dict[int, list[str]] = field(default_factory=dict)  # rule id -> reasons

    @property
    def ok(self) -> bool:
        return not self.entity_problems and not self.field_problems and not self.rule_problems

    @property
    def problem_count(self) -> int:
        rows = [*self.field_problems.values(), *self.rule_problems.values()]
        return len(self.entity_problems) + sum(len(p) for p in rows)

    def for_field(self, destination_field: str) -> list[str]:
        return self.field_problems.get(destination_field, [])

    def for_rule(self, rule_id: int | None) -> list[str]:
        return self.rule_problems.get(rule_id, []) if rule_id is not None else []


def _active_entities() -> set[str]:
    return set(
        SchemaMappingDefinition.objects.filter(is_active=True).values_list("entity_type", flat=True)
    )


def validate_definition(
    *, definition: SchemaMappingDefinition, tables: IntrospectedTables
) -> ValidationReport:
    """The importer's checks on a stored definition (as activation would run them)."""
    problems: list[MappingProblem] = []
    top: list[str] = []
    try:
        spec = definition_to_entity(definition)
    except MappingError as exc:
        spec, problems = None, list(exc.problems)
    if spec is not None:
        # As activation checks it: a parent must be an active entity.
        known = sorted(_active_entities() | {definition.entity_type})
        problems += check_entity(spec, known_entities=known)
        if tables.source_reached and tables.destination_reached:
            problems += check_against_tables(spec, tables.source, tables.destination)
    tables_checked = spec is not None and tables.source_reached and tables.destination_reached
    warnings = []
    if not tables_checked and spec is not None:
        warnings.append("tables and columns were not checked: " + "; ".join(tables.warnings))

    by_rule, rule_reasons = _rule_problems(definition, spec)
    rows = [row.destination_field for row in definition.field_mappings.all()]
    labels = {f"#{n}": name for n, name in enumerate(rows, start=1)}
    by_field: dict[str, list[str]] = {}
    for problem in dict.fromkeys(problems):  # the same problem once, in order
        if (problem.field, problem.reason) in rule_reasons:
            continue  # shown on the rule's own row
        name = labels.get(problem.field or "", problem.field)
        if name and name in rows:
            by_field.setdefault(name, []).append(problem.reason)
        else:
            top.append(
                f"field {problem.field!r}: {problem.reason}" if problem.field else problem.reason
            )
    return ValidationReport(
        entity_problems=top,
        field_problems=by_field,
        tables_checked=tables_checked,
        warnings=warnings,
        rule_problems=by_rule,
    )


def _rule_problems(
    definition: SchemaMappingDefinition, spec: EntitySpec | None
) -> tuple[dict[int, list[str]], set[tuple[str | None, str]]]:
    """Each validation rule's problems by the rule's id, and every (field, reason) of them.

    The entity's checks name a rule's field, not the rule: each rule is checked alone here
    so that its problem lands on its own row (two rules on one field stay apart).
    """
    if spec is None:
        return {}, set()
    destinations = [f.destination for f in spec.fields if f.destination]
    rules = list(definition.validation_rules.all())
    by_rule: dict[int, list[str]] = {}
    reasons: set[tuple[str | None, str]] = set()
    for rule, rule_spec in zip(rules, spec.validation, strict=False):
        try:
            compile_rules(definition.entity_type, [rule_spec], destinations)
        except MappingError as exc:
            by_rule[rule.pk] = [p.reason for p in exc.problems]
            reasons.update((p.field, p.reason) for p in exc.problems)
    return by_rule, reasons


def records_to_rewrite(entity: str) -> int:
    """How many records of ``entity`` a new active version makes ``modified`` on the next run:
    every record in the record map that is not deleted."""
    return RecordMap.objects.filter(entity_type=entity, deleted_at__isnull=True).count()


# --------------------------------------------------------------------------- differences

SETTINGS = (*DEFINITION_SETTINGS, "description")
FIELD_ATTRIBUTES = (
    "source_field",
    "expression",
    "transformation",
    "reference",
    "is_required",
    "has_default",
    "default_value",
)
RULE_ATTRIBUTES = ("rule_parameters",)
FUNCTION_ATTRIBUTES = ("function_body", "description")


NOTHING = "\N{EN DASH}"  # an empty cell


def shown(value: Any) -> str:
    """A setting or cell as people read it in a diff."""
    if value is None or value == "":
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or NOTHING
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if value else NOTHING
    return str(value)


@dataclass(frozen=True)
class DiffItem:
    """One setting or row that differs: ``lines`` are (attribute, in a, in b, differs)."""

    key: str
    status: str  # added | removed | changed
    lines: list[tuple[str, str, str, bool]]


@dataclass(frozen=True)
class DiffSection:
    name: str  # settings | fields | rules | functions
    title: str
    key_label: str
    items: list[DiffItem]
    unchanged: int


@dataclass(frozen=True)
class DefinitionDiff:
    a: SchemaMappingDefinition
    b: SchemaMappingDefinition
    sections: list[DiffSection]

    @property
    def is_empty(self) -> bool:
        return not any(section.items for section in self.sections)

    def section(self, name: str) -> DiffSection:
        return next(s for s in self.sections if s.name == name)


def _compare(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], attributes: tuple
) -> tuple[list[DiffItem], int]:
    items: list[DiffItem] = []
    unchanged = 0
    for key in [*before, *(k for k in after if k not in before)]:
        a, b = before.get(key), after.get(key)
        status = "added" if a is None else "removed" if b is None else "changed"
        lines = [
            (
                name,
                shown(a[name]) if a is not None else "",
                shown(b[name]) if b is not None else "",
                a is None or b is None or a[name] != b[name],
            )
            for name in attributes
        ]
        if status == "changed" and not any(line[3] for line in lines):
            unchanged += 1
            continue
        if status == "changed":
            lines = [line for line in lines if line[3]]
        items.append(DiffItem(key=key, status=status, lines=lines))
    return items, unchanged


def _keyed_rules(definition: SchemaMappingDefinition) -> dict[str, dict[str, Any]]:
    seen: Counter[str] = Counter()
    out: dict[str, dict[str, Any]] = {}
    for rule in definition.validation_rules.all():
        key = f"{rule.field_name}: {rule.rule_type}"
        seen[key] += 1
        out[key if seen[key] == 1 else f"{key} #{seen[key]}"] = {
            "rule_parameters": rule.rule_parameters
        }
    return out


def _rows(definition: SchemaMappingDefinition) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        "settings": {name: {"value": getattr(definition, name)} for name in SETTINGS},
        "fields": {
            row.destination_field: {name: getattr(row, name) for name in FIELD_ATTRIBUTES}
            for row in definition.field_mappings.all()
        },
        "rules": _keyed_rules(definition),
        "functions": {
            row.name: {name: getattr(row, name) for name in FUNCTION_ATTRIBUTES}
            for row in definition.transformation_functions.all()
        },
    }


SECTIONS = (
    ("settings", "Settings", "Setting", ("value",)),
    ("fields", "Field mappings", "Destination field", FIELD_ATTRIBUTES),
    ("rules", "Validation rules", "Rule", RULE_ATTRIBUTES),
    ("functions", "Functions", "Function", FUNCTION_ATTRIBUTES),
)


def diff_definitions(*, a: SchemaMappingDefinition, b: SchemaMappingDefinition) -> DefinitionDiff:
    """What changes from version ``a`` to version ``b`` (load both with their rows)."""
    before, after = _rows(a), _rows(b)
    sections = []
    for name, title, key_label, attributes in SECTIONS:
        items, unchanged = _compare(before[name], after[name], attributes)
        sections.append(DiffSection(name, title, key_label, items, unchanged))
    return DefinitionDiff(a=a, b=b, sections=sections)
