"""One row pipeline for a batch: transform → validate → resolve references → uniqueness.

A run (``runner.py``), ``verify`` (``verify.py``) and the mapping preview
(``services/preview.py``) put a batch of source rows through these same steps, so that a row
fails the same way, with the same rule, field and message, wherever it is looked at:

1. **transform**: ``CompiledEntity.transform_columns`` (columns where the mapping has a
   column form, the exact row-wise fallback elsewhere); a row whose transform or conversion
   fails keeps that ``RowError``;
2. **validate**: every rule but ``unique`` (``validate_columns``); the first rule broken fails
   the row;
3. **references**: each ``ReferenceValue`` becomes its parent's UUID, looked up in the
   record map (one lookup per parent entity and batch; a run remembers what it found,
   ``RememberedParents``). What a parent with no live entry
   does is the caller's ``References``: it fails the row (rule ``reference``) in a run,
   unless it is a `reference: self` parent the run has yet to write (held for the second
   pass, ``selfref.py``); in a preview it fails the row only once the parent entity has been
   migrated at all; verify marks it and fails nothing;
4. **adoption** (a run's ``match_on``, ``adopt.py``): a hook that may give a new record the
   UUID of an existing destination row; before the unique check, since an adopted row's
   values are its own;
5. **unique**: within the batch (the first row with a value keeps it), then against the
   destination: a value held by another row is a clash, by the record's own row is not.

Each step looks at the rows still passing, so a row keeps its first error. References are
resolved on every row the transform produced, a failing one too (a preview shows them), but
only a passing row fails on one. The batch stays columns throughout (``CheckedBatch``: the
values as ``RowColumns``, what fails a row by its index); ``run`` gives it as one
``PipelineRow`` a row, for verify and the preview. No Django here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .adopt import Adoption
from .compile import CompiledEntity, ReferenceValue
from .errors import RowError
from .row_columns import RowColumns, SourceRows
from .stages import StageSeconds
from .validation import CompiledRule, unique_rules, unique_violations, validate_columns
from .values import UnresolvedReference

ParentLookup = Callable[[str, Collection[str]], Mapping[str, uuid.UUID]]
"""The UUIDs of a parent entity's legacy keys that have a live record-map entry."""

ShowReference = Callable[[ReferenceValue, uuid.UUID | None], Any]
"""What a reference becomes in the values, given its parent's UUID (None: not found)."""

Adopter = Callable[[Sequence[tuple[str, uuid.UUID, Mapping[str, Any]]]], Adoption]
"""``match_on``: what adoption decides for the passing rows, (key text, UUID, values)."""

SourceRow = tuple[str, uuid.UUID, Mapping[str, Any]]
"""One row in: its key text, the UUID it is (or would be) written under, its source values."""


class RememberedParents:
    """A ``ParentLookup`` that remembers the UUIDs it found, up to ``limit`` keys a parent
    entity (a few MB), so that a parent many children share (a doctor of thousands of patients) is
    looked up once a run, not once a batch. A run writes a parent entity before its children
    and a record keeps its UUID, so what was found stays true for the run's upserts. A key
    not found is asked again every time: a `reference: self` parent may be written since."""

    __slots__ = ("_found", "_limit", "_lookup")

    def __init__(self, lookup: ParentLookup, *, limit: int = 25_000) -> None:
        self._lookup = lookup
        self._limit = limit
        self._found: dict[str, dict[str, uuid.UUID]] = {}

    def __call__(self, parent: str, keys: Collection[str]) -> Mapping[str, uuid.UUID]:
        known = self._found.setdefault(parent, {})
        found = {key: known[key] for key in keys if key in known}
        asked = [key for key in keys if key not in found]
        if asked:
            fetched = self._lookup(parent, asked)
            found.update(fetched)
            room = self._limit - len(known)
            if room >= len(fetched):
                known.update(fetched)
            elif room > 0:
                known.update(dict(list(fetched.items())[:room]))
        return found


class ValueOwners(Protocol):
    def owners_of_values(self, column: str, values: Iterable[Any]) -> dict[Any, uuid.UUID]:
        """Which destination row holds each value now (``DestinationWriter``'s)."""


def uuid_or_unresolved(ref: ReferenceValue, parent_uuid: uuid.UUID | None) -> Any:
    """The parent's UUID, or an ``UnresolvedReference`` that equals no destination value."""
    return parent_uuid if parent_uuid is not None else UnresolvedReference(ref.entity, ref.key_text)


def _every_parent(parent: str) -> bool:
    return True


def _no_parent(parent: str) -> bool:
    return False


@dataclass(frozen=True)
class References:
    """How a batch's references are resolved, and what an unresolved one does."""

    lookup: ParentLookup
    # Whether a missing parent of this entity fails the row (asked once per parent entity).
    required: Callable[[str], bool] = _every_parent
    # `reference: self`: which of these unresolved parent keys this run will still write
    # (``ChangeSetReader.in_change_set``); those are written NULL and kept as links.
    coming: Callable[[set[str]], Collection[str]] | None = None
    show: ShowReference = uuid_or_unresolved

    @classmethod
    def for_run(
        cls, lookup: ParentLookup, coming: Callable[[set[str]], Collection[str]]
    ) -> References:
        """A run: a missing parent fails the row, but for a `reference: self` parent that
        this run writes later (in this batch, a later one, or a cycle): linked after all
        upserts."""
        return cls(lookup=lookup, coming=coming)

    @classmethod
    def for_preview(
        cls,
        entity: str,
        lookup: ParentLookup,
        migrated: Callable[[str], bool],
        show: ShowReference,
    ) -> References:
        """A preview: every reference shown (``show``); a missing parent fails the row only
        once its entity has been ``migrated`` at all (a run migrates parents first, so before
        the first run every child would look refused), and a self-reference never (its
        parent may be in the same batch)."""
        return cls(
            lookup=lookup,
            required=lambda parent: parent != entity and migrated(parent),
            show=show,
        )

    @classmethod
    def for_verify(cls, lookup: ParentLookup) -> References:
        """Verify: an unresolved reference is marked (it equals nothing), never a failure."""
        return cls(lookup=lookup, required=_no_parent)


@dataclass(slots=True)
class PipelineRow:
    """One row out: its destination values, or the error that fails it."""

    key_text: str
    # The UUID the row is written under (adoption may have changed it).
    uuid: uuid.UUID
    # Empty when the transform failed; kept on a row failing a later step (a preview shows it).
    values: dict[str, Any]
    error: RowError | None = None
    # `reference: self` columns written NULL: column -> the parent's legacy key text.
    links: dict[str, str] | None = None
    # Why the row is written the way it is (adopted by ``match_on``), for its record event.
    note: str = ""

    @property
    def result(self) -> dict[str, Any] | RowError:
        """The destination values, or the RowError."""
        return self.error if self.error is not None else self.values


@dataclass
class CheckedBatch:
    """A batch out, a column at a time: each row's destination values (``values``, NULL
    throughout a row whose transform failed), and by row index what fails a row, what
    `reference: self` columns it holds back and why it is written as it is."""

    keys: Sequence[str]
    # The UUID each row is written under (adoption may have changed it).
    uuids: list[uuid.UUID]
    values: RowColumns
    errors: dict[int, RowError]
    # Rows whose transform failed: they have no values (a preview shows none).
    untransformed: Collection[int] = ()
    links: dict[int, dict[str, str]] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def passing(self) -> list[int]:
        """The indexes of the rows no step has failed, in order."""
        errors = self.errors
        if not errors:
            return list(range(len(self.keys)))
        return [index for index in range(len(self.keys)) if index not in errors]

    def row(self, index: int) -> PipelineRow:
        """Row ``index`` as one ``PipelineRow``."""
        return PipelineRow(
            self.keys[index],
            self.uuids[index],
            {} if index in self.untransformed else self.values.row(index),
            self.errors.get(index),
            self.links.get(index),
            self.notes.get(index, ""),
        )

    def rows(self) -> list[PipelineRow]:
        return [self.row(index) for index in range(len(self.keys))]


@dataclass
class RowPipeline:
    """The checks of one entity's batches; see the module docstring for the steps."""

    compiled: CompiledEntity
    rules: Sequence[CompiledRule] = ()
    today: dt.date = field(default_factory=dt.date.today)
    # Required when the entity has reference fields.
    references: References | None = None
    # The destination, for `unique` (required when a rule is `unique`).
    owners: ValueOwners | None = None
    adopt: Adopter | None = None
    _unique: list[CompiledRule] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._unique = unique_rules(self.rules)
        if self._unique and self.owners is None:
            raise ValueError("a `unique` rule needs the destination's owners_of_values")
        if self.compiled.reference_fields and self.references is None:
            raise ValueError(f"entity {self.compiled.spec.name!r} has references to resolve")

    def run(
        self, rows: Sequence[SourceRow], *, stages: StageSeconds | None = None
    ) -> list[PipelineRow]:
        """Each row's values or error, in the order of ``rows``; ``stages`` (when given)
        counts the transform and the checks (``validate``)."""
        return self.check(rows, stages=stages).rows()

    def check(
        self, rows: Sequence[SourceRow], *, stages: StageSeconds | None = None
    ) -> CheckedBatch:
        """``run``'s rows as one batch of columns."""
        return self.check_source(
            [key for key, _, _ in rows],
            [record_uuid for _, record_uuid, _ in rows],
            SourceRows([source for _, _, source in rows]),
            stages=stages,
        )

    def check_source(
        self,
        keys: Sequence[str],
        uuids: Sequence[uuid.UUID],
        source: SourceRows,
        *,
        stages: StageSeconds | None = None,
    ) -> CheckedBatch:
        """``check`` of rows given as their key texts, their UUIDs and their source values
        (as columns, or one dict a row)."""
        stages = stages if stages is not None else StageSeconds()
        with stages.measure("transform"):
            values, failed = self.compiled.transform_columns(source)
            batch = CheckedBatch(
                keys=keys,
                uuids=list(uuids),
                values=values,
                errors=dict(failed),
                untransformed=frozenset(failed),
            )
        with stages.measure("validate"):
            self._validate(batch)
            self._resolve_references(batch)
            self._adopt(batch)
            self._check_unique(batch)
        return batch

    def _validate(self, batch: CheckedBatch) -> None:
        """The rules of each row (all but `unique`, which needs the whole batch)."""
        if not self.rules:
            return
        found = validate_columns(self.rules, batch.values, batch.passing(), today=self.today)
        batch.errors.update(found)

    def _resolve_references(self, batch: CheckedBatch) -> None:
        """Each reference column's parent keys become their UUIDs, a column at a time; a
        parent not found is looked at row by row (held back, shown, or failing the row)."""
        fields = self.compiled.reference_fields
        if not fields or self.references is None:
            return
        references = self.references
        columns = {column: batch.values.column(column) for column in fields}
        wanted: dict[str, set[str]] = {}
        for column, parent in fields.items():
            texts = {ref.key_text for ref in columns[column] if isinstance(ref, ReferenceValue)}
            wanted.setdefault(parent, set()).update(texts)
        resolved = {parent: references.lookup(parent, keys) for parent, keys in wanted.items()}
        entity = self.compiled.spec.name
        coming: Collection[str] = ()
        if references.coming is not None:
            unresolved = wanted.get(entity, set()) - set(resolved.get(entity, {}))
            coming = references.coming(unresolved) if unresolved else ()
        required: dict[str, bool] = {}
        errors = batch.errors
        show = references.show
        missing_by_column: list[tuple[str, str, list[int]]] = []
        for column, parent in fields.items():
            values = columns[column]
            found = resolved.get(parent, {})
            missing: list[int] = []
            for index, ref in enumerate(values):
                if isinstance(ref, ReferenceValue):
                    parent_uuid = found.get(ref.key_text)
                    if parent_uuid is None:
                        missing.append(index)
                    elif show is uuid_or_unresolved:
                        values[index] = parent_uuid
                    else:
                        values[index] = show(ref, parent_uuid)
            if missing:
                missing_by_column.append((column, parent, missing))
        # A row fails on its first missing parent in the order of the fields, as it reads.
        for column, parent, missing in missing_by_column:
            values = columns[column]
            for index in missing:
                ref = values[index]
                if ref.entity == entity and ref.key_text in coming:
                    # Written NULL now, set by the second pass once every upsert is done.
                    batch.links[index] = {**batch.links.get(index, {}), column: ref.key_text}
                    values[index] = None
                    continue
                values[index] = show(ref, None)
                if index not in errors:
                    if parent not in required:
                        required[parent] = references.required(parent)
                    if required[parent]:
                        errors[index] = RowError(
                            f"missing parent: {parent} {ref.key_text!r} has not been migrated",
                            field=column,
                            rule="reference",
                            value=ref.key_text,
                        )

    def _adopt(self, batch: CheckedBatch) -> None:
        passing = batch.passing()
        if self.adopt is None or not passing:
            return
        adoption = self.adopt(
            [(batch.keys[index], batch.uuids[index], batch.values.row(index)) for index in passing]
        )
        for index in passing:
            key = batch.keys[index]
            error = adoption.errors.get(key)
            if error is not None:
                batch.errors[index] = error
                continue
            batch.uuids[index] = adoption.uuids.get(key, batch.uuids[index])
            note = adoption.notes.get(key, "")
            if note:
                batch.notes[index] = note

    def _check_unique(self, batch: CheckedBatch) -> None:
        """Within the batch first, then against the rows the destination holds."""
        rules = self._unique
        passing = batch.passing()
        if not rules or not passing:
            return
        batch.errors.update(unique_violations(rules, batch.values, passing, batch.keys))
        passing = batch.passing()
        assert self.owners is not None  # __post_init__
        columns = {rule.field: batch.values.column(rule.field) for rule in rules}
        owners = {
            rule.field: self.owners.owners_of_values(
                rule.field, [columns[rule.field][index] for index in passing]
            )
            for rule in rules
        }
        for index in passing:
            for rule in rules:
                value = columns[rule.field][index]
                owner = owners[rule.field].get(value) if value is not None else None
                if owner is not None and owner != batch.uuids[index]:
                    batch.errors[index] = RowError(
                        f"unique: {value!r} is already used by another destination record",
                        field=rule.field,
                        rule="unique",
                        value=value,
                    )
                    break
