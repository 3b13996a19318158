"""Validation rules on destination values: required, unique, format and range.

Rules come from an entity's ``validation:`` list and apply to the destination row after
transforms and type conversion. ``compile_rules`` refuses a bad rule list at import, naming
every problem at once; ``validate_row`` returns the first rule a row breaks as a ``RowError``
(the row is quarantined), and ``validate_batch`` (``validate_columns`` on a batch kept as
columns) the same for each row of a batch, a rule at a time over its field's column.
``unique`` is checked across rows: ``batch_unique_violations`` (``unique_violations``)
within one source batch here, against the destination by the writer.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import repeat
from types import MappingProxyType
from typing import Any

from migrationsapp.engine.convert import show_value as show
from migrationsapp.engine.errors import MappingError, MappingProblem, RowError
from migrationsapp.engine.patterns import PatternError, UserPattern, compile_pattern
from migrationsapp.engine.row_columns import RowColumns

RULES = ("required", "unique", "format", "range")
_PARAMS = {"required": set(), "unique": set(), "format": {"pattern"}, "range": {"min", "max"}}

# A practical address check, not RFC 5322: dot-separated local part, hostname labels of at
# most 63 characters, and a top-level domain of letters. RE2 like every user pattern.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
NAMED_PATTERNS: Mapping[str, UserPattern] = MappingProxyType(
    {"email": compile_pattern(rf"{_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}")}
)

_TODAY = "today"
Bound = int | float | Decimal | dt.date | str  # str only for 'today'


@dataclass(frozen=True)
class RuleSpec:
    """One rule as the mapping file writes it."""

    field: str
    rule: str  # required | unique | format | range
    params: Mapping[str, Any] = field(default_factory=dict)


class CompiledRule:
    """A checked rule, ready to test destination values."""

    __slots__ = ("_check", "field", "params", "rule")

    def __init__(
        self,
        field: str,
        rule: str,
        params: Mapping[str, Any],
        check: Callable[[Any, dt.date], str | None],
    ) -> None:
        self.field = field
        self.rule = rule
        self.params = params
        self._check = check

    def check(self, value: Any, today: dt.date) -> str | None:
        """The reason ``value`` breaks this rule, or None when it passes."""
        return self._check(value, today)

    def __repr__(self) -> str:
        return f"CompiledRule({self.field!r}, {self.rule!r}, {dict(self.params)!r})"


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _required_check(field: str) -> Callable[[Any, dt.date], str | None]:
    def check(value: Any, today: dt.date) -> str | None:
        if value is None:
            return f"required: {field} has no value"
        if isinstance(value, str) and not value.strip():
            return f"required: {field} is empty ({value!r})"
        return None

    return check


def _check_unique(value: Any, today: dt.date) -> str | None:
    return None  # across rows: see batch_unique_violations


def _format_check(pattern: str) -> Callable[[Any, dt.date], str | None]:
    """The check of a ``format`` rule; PatternError when RE2 refuses the pattern."""
    named = NAMED_PATTERNS.get(pattern)
    regex = named or compile_pattern(pattern)
    failure = f"is not a valid {pattern}" if named else f"does not match the pattern {pattern!r}"

    def check(value: Any, today: dt.date) -> str | None:
        if value is None:
            return None
        text = value if isinstance(value, str) else str(value)
        try:
            matched = regex.fullmatch(text)
        except PatternError as exc:  # a value that is not valid Unicode
            return f"format: {show(text)}: {exc}"
        return None if matched else f"format: {show(text)} {failure}"

    return check


def _parse_bound(raw: Any) -> Bound:
    """A number, a date, or 'today'; ValueError for anything else."""
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, int | float | Decimal):
        return raw
    if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
        return raw
    if isinstance(raw, str):
        if raw.strip().lower() == _TODAY:
            return _TODAY
        return dt.date.fromisoformat(raw.strip())
    raise ValueError


def _is_date_bound(bound: Bound | None) -> bool:
    return bound == _TODAY or isinstance(bound, dt.date)


def _range_check(low: Bound | None, high: Bound | None) -> Callable[[Any, dt.date], str | None]:
    dates = _is_date_bound(low) or _is_date_bound(high)

    def describe(bound: Bound, today: dt.date) -> tuple[Any, str]:
        if bound == _TODAY:
            return today, f"today ({today.isoformat()})"
        return bound, _text(bound)

    def check(value: Any, today: dt.date) -> str | None:
        if value is None:
            return None
        if dates:
            if not isinstance(value, dt.date):
                return f"range: {show(value)} is not a date"
            # A datetime is within a date range when its day is.
            subject = value.date() if isinstance(value, dt.datetime) else value
            before, after = "before", "after"
        else:
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                return f"range: {show(value)} is not a number"
            subject = value
            before, after = "below", "above"
        if low is not None:
            limit, shown = describe(low, today)
            if subject < limit:
                return f"range: {_text(value)} is {before} min {shown}"
        if high is not None:
            limit, shown = describe(high, today)
            if subject > limit:
                return f"range: {_text(value)} is {after} max {shown}"
        return None

    return check


def _compile_one(spec: RuleSpec, problem: Callable[[str], None]) -> CompiledRule | None:
    params = spec.params if spec.params is not None else {}
    if not isinstance(params, Mapping):
        problem(f"{spec.rule}: params must be a mapping, not {show(params)}")
        return None
    unknown = sorted(str(k) for k in params if k not in _PARAMS[spec.rule])
    if unknown:
        problem(f"{spec.rule}: unknown parameter {', '.join(unknown)}")
    check: Callable[[Any, dt.date], str | None]
    if spec.rule == "required":
        check = _required_check(spec.field)
    elif spec.rule == "unique":
        check = _check_unique
    elif spec.rule == "format":
        pattern = params.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            problem("format needs a `pattern`: a regular expression or the name 'email'")
            return None
        try:
            check = _format_check(pattern)
        except PatternError as exc:
            problem(f"format: the pattern {pattern!r} is refused: {exc}")
            return None
    else:
        if params.get("min") is None and params.get("max") is None:
            problem("range needs `min`, `max` or both")
            return None
        bounds: dict[str, Bound | None] = {}
        for name in ("min", "max"):
            raw = params.get(name)
            try:
                bounds[name] = None if raw is None else _parse_bound(raw)
            except ValueError:
                problem(f"range: {name} {show(raw)} is neither a number, an ISO date nor 'today'")
                return None
        low, high = bounds["min"], bounds["max"]
        if low is not None and high is not None:
            if _is_date_bound(low) != _is_date_bound(high):
                problem("range: min and max must both be numbers or both be dates")
                return None
            if low != _TODAY and high != _TODAY and low > high:  # type: ignore[operator]
                problem(f"range: min {_text(low)} is greater than max {_text(high)}")
                return None
        check = _range_check(low, high)
    # A read-only copy, so the rule cannot change under the runner.
    return CompiledRule(spec.field, spec.rule, MappingProxyType(dict(params)), check)


def compile_rules(
    entity: str, rules: Sequence[RuleSpec], destination_fields: Collection[str]
) -> list[CompiledRule]:
    """Check and compile an entity's rules; MappingError lists every problem found."""
    problems: list[MappingProblem] = []
    compiled: list[CompiledRule] = []
    for spec in rules:

        def problem(reason: str, spec: RuleSpec = spec) -> None:
            problems.append(MappingProblem(entity=entity, field=spec.field, reason=reason))

        if spec.rule not in RULES:
            problem(f"unknown rule {spec.rule!r}; expected one of {', '.join(RULES)}")
            continue
        if spec.field not in destination_fields:
            problem(f"{spec.rule}: {spec.field!r} is not a destination field of this entity")
        rule = _compile_one(spec, problem)
        if rule is not None:
            compiled.append(rule)
    if problems:
        raise MappingError(problems)
    return compiled


def validate_row(
    rules: Sequence[CompiledRule], row: Mapping[str, Any], *, today: dt.date
) -> RowError | None:
    """The first rule ``row`` breaks, as a RowError; None when all pass. ``unique`` is skipped."""
    for rule in rules:
        if rule.rule == "unique":
            continue
        value = row.get(rule.field)
        reason = rule.check(value, today)
        if reason is not None:
            return RowError(reason, field=rule.field, rule=rule.rule, value=value)
    return None


def validate_batch(
    rules: Sequence[CompiledRule], rows: Sequence[Mapping[str, Any]], *, today: dt.date
) -> list[RowError | None]:
    """``validate_row`` of each row, a rule at a time over its field's values."""
    fields = list(dict.fromkeys(rule.field for rule in rules))
    found = validate_columns(rules, RowColumns.of_rows(rows, fields), range(len(rows)), today=today)
    return [found.get(index) for index in range(len(rows))]


def validate_columns(
    rules: Sequence[CompiledRule], batch: RowColumns, indexes: Sequence[int], *, today: dt.date
) -> dict[int, RowError]:
    """``validate_row`` of the rows at ``indexes`` of ``batch``, a rule at a time over its
    field's column: the error of each row that breaks a rule, by index."""
    errors: dict[int, RowError] = {}
    every = len(indexes) == len(batch)
    for rule in rules:
        if rule.rule == "unique":
            continue
        column = batch.column(rule.field)
        values = column if every else [column[index] for index in indexes]
        if rule.rule == "required":
            # The rule's own check only where it fails: None, or text of only whitespace.
            breaking = [
                at
                for at, value in enumerate(values)
                if value is None or (isinstance(value, str) and not value.strip())
            ]
        else:
            reasons = map(rule.check, values, repeat(today))
            breaking = [at for at, reason in enumerate(reasons) if reason is not None]
        for at in breaking:
            index = indexes[at]
            if index not in errors:
                value = values[at]
                reason = rule.check(value, today)
                assert reason is not None  # the same check, the same value
                errors[index] = RowError(reason, field=rule.field, rule=rule.rule, value=value)
    return errors


def unique_rules(rules: Sequence[CompiledRule]) -> list[CompiledRule]:
    """The rules the writer must also check against the destination."""
    return [rule for rule in rules if rule.rule == "unique"]


def _identity(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:  # a JSON value: compare by its canonical text
        return ("json", json.dumps(value, sort_keys=True, default=str))
    return value


def batch_unique_violations(
    rules: Sequence[CompiledRule], rows: Sequence[tuple[str, Mapping[str, Any]]]
) -> dict[str, RowError]:
    """Rows (key text, destination row) repeating a unique value seen earlier in the batch.

    The first row with a value keeps it; each later one fails, naming the first's key.
    """
    fields = list(dict.fromkeys(rule.field for rule in unique_rules(rules)))
    batch = RowColumns.of_rows([row for _, row in rows], fields)
    keys = [key for key, _ in rows]
    found = unique_violations(rules, batch, range(len(rows)), keys)
    return {keys[index]: error for index, error in found.items()}


def unique_violations(
    rules: Sequence[CompiledRule],
    batch: RowColumns,
    indexes: Sequence[int],
    keys: Sequence[str],
) -> dict[int, RowError]:
    """``batch_unique_violations`` of the rows at ``indexes`` of ``batch`` (``keys`` the key
    texts of every row), by index."""
    failures: dict[int, RowError] = {}
    for rule in unique_rules(rules):
        first_key: dict[Any, str] = {}
        column = batch.column(rule.field)
        for index in indexes:
            value = column[index]
            if value is None:
                continue
            identity = _identity(value)
            if identity not in first_key:
                first_key[identity] = keys[index]
            elif index not in failures:
                failures[index] = RowError(
                    f"unique: duplicate value {show(value)} (also in record {first_key[identity]})",
                    field=rule.field,
                    rule="unique",
                    value=value,
                )
    return failures
