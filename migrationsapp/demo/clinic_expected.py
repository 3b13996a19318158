"""What a correct migration of the clinic must produce, computed independently of the engine.

These functions follow ``examples/clinic.yaml`` and docs/mapping.md in plain Python (the
phone numbers through the ``phonenumbers`` library directly), so that tests can hold the
engine's output against a second implementation instead of against itself. Nothing here
imports the engine except ``ids`` for the key encoding.

A destination row is given without its UUID; a reference is given as the parent's legacy
key text (``{'office_id': '3'}``). A row fails when a transform cannot handle its value or a
rule refuses it, and also when a parent it references failed or does not exist ("missing
parent"), and so on down the tree. Failure reasons read ``'field: why'``
(``'email: unique'``, ``'doctor_id: missing parent'``); only the keys are meant to be
compared with the engine's quarantine, not the wording.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from migrationsapp.demo.clinic_model import ENTITIES, ChangeLog, ClinicData, Row
from migrationsapp.engine.ids import encode_key

PHONE_REGION = "US"
CENTS = Decimal("0.01")
# The addresses the clinic holds are plain ones; this pattern decides them all the same way
# as any reasonable email check would.
EMAIL_PATTERN = re.compile(r"[A-Za-z0-9._%+'-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}", re.ASCII)
_DATE_FORMS = (
    (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII), (0, 1, 2)),  # YYYY-MM-DD
    (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})", re.ASCII), (2, 0, 1)),  # MM/DD/YYYY
    (re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", re.ASCII), (2, 1, 0)),  # DD.MM.YYYY
)
ANALYSIS_CATEGORIES = ("new", "modified", "deleted", "unchanged", "retry")


class RowFailure(Exception):
    """The row cannot migrate: ``field`` and a short reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --------------------------------------------------------------------------- the rules


def trim(value: str | None) -> str | None:
    return None if value is None else value.strip()


def title_trim(value: str | None) -> str | None:
    """``title(trim(value))``, as Python's ``str.title``."""
    return None if value is None else value.strip().title()


def email(value: str | None) -> str | None:
    """The ``email`` transform: trimmed and lower-cased."""
    return None if value is None else value.strip().lower()


def legacy_date(field: str, value: str | dt.date | None) -> dt.date | None:
    """YYYY-MM-DD, MM/DD/YYYY or DD.MM.YYYY (unpadded too); zero, empty or impossible → None."""
    if value is None or isinstance(value, dt.date):
        return value
    text = value.strip()
    if not text:
        return None
    for pattern, (y, m, d) in _DATE_FORMS:
        match = pattern.fullmatch(text)
        if match:
            parts = [int(group) for group in match.groups()]
            try:
                return dt.date(parts[y], parts[m], parts[d])
            except ValueError:  # '0000-00-00', '2021-02-30'
                return None
    raise RowFailure(field, "legacy_date")


def phone_e164(field: str, value: str | None) -> str | None:
    """E.164 through libphonenumber; an invalid number fails the row."""
    if value is None:
        return None
    try:
        number = phonenumbers.parse(value, PHONE_REGION)
    except phonenumbers.NumberParseException:
        raise RowFailure(field, "phone_e164") from None
    if not phonenumbers.is_valid_number(number):
        raise RowFailure(field, "phone_e164")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def to_bool(field: str, value: Any) -> bool | None:
    """1/0, Y/N, yes/no, true/false in any case."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "y", "yes", "true"):
        return True
    if text in ("0", "n", "no", "false"):
        return False
    raise RowFailure(field, "to_bool")


def aware(value: dt.datetime | None, zone: dt.tzinfo) -> dt.datetime | None:
    """A naive legacy timestamp in ``zone`` as an aware UTC datetime."""
    return None if value is None else value.replace(tzinfo=zone).astimezone(dt.UTC)


def required(field: str, value: Any) -> None:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowFailure(field, "required")


def email_format(field: str, value: str | None) -> None:
    if value is not None and not EMAIL_PATTERN.fullmatch(value):
        raise RowFailure(field, "format")


def reference(field: str, value: Any, valid: dict[str, Row], *, nullable: bool) -> str | None:
    """The parent's key text; a parent that failed or does not exist fails the row."""
    if value is None:
        if nullable:
            return None
        raise RowFailure(field, "required")
    key = encode_key([value])
    if key not in valid:
        raise RowFailure(field, "missing parent")
    return key


# --------------------------------------------------------------------------- per entity


def _office(row: Row, done: dict[str, dict[str, Row]], zone: dt.tzinfo) -> Row:
    out = {
        "legacy_id": int(row["id"]),
        "name": trim(row["name"]),
        "phone": phone_e164("phone", row["phone"]),
        "opened_on": legacy_date("opened_on", row["opened"]),  # the zero date reads as None
    }
    required("name", out["name"])
    return out


def _doctor(row: Row, done: dict[str, dict[str, Row]], zone: dt.tzinfo) -> Row:
    first, last = title_trim(row["first_name"]), title_trim(row["last_name"])
    salary = row["salary"]
    out = {
        "office_id": reference("office_id", row["office_id"], done["office"], nullable=False),
        "legacy_id": int(row["id"]),
        "full_name": f"{first} {last}",
        "email": email(row["email"]),
        "is_active": row["active_flag"] == "Y",
        "salary": None if salary is None else Decimal(salary).quantize(CENTS),
        "hired_at": aware(row["hired"], zone),
    }
    email_format("email", out["email"])
    required("full_name", out["full_name"])
    return out


def _patient(row: Row, done: dict[str, dict[str, Row]], zone: dt.tzinfo) -> Row:
    out = {
        "code": row["code"],
        "doctor_id": reference("doctor_id", row["doctor_id"], done["doctor"], nullable=True),
        "name": title_trim(row["name"]),
        "birth_date": legacy_date("birth_date", row["birth"]),
        "vip": to_bool("vip", row["vip"]),
        "phone": phone_e164("phone", row["phone"]),
    }
    required("name", out["name"])
    return out


def _appointment(row: Row, done: dict[str, dict[str, Row]], zone: dt.tzinfo) -> Row:
    return {
        "patient_id": reference("patient_id", row["patient_code"], done["patient"], nullable=False),
        "seq": int(row["seq"]),
        "doctor_id": reference("doctor_id", row["doctor_id"], done["doctor"], nullable=True),
        "starts_at": aware(row["starts"], zone),
        "note": row["note"],
    }


_MAPPERS: dict[str, Callable[[Row, dict[str, dict[str, Row]], dt.tzinfo], Row]] = {
    "office": _office,
    "doctor": _doctor,
    "patient": _patient,
    "appointment": _appointment,
}
# Fields with a `unique` rule; the first row in key order keeps a value, later ones fail.
UNIQUE_FIELDS: dict[str, tuple[str, ...]] = {"doctor": ("email",)}


def _key_order(entity: str, item: tuple[str, Row]) -> tuple[Any, ...]:
    row = item[1]
    if entity in ("office", "doctor"):
        return (row["id"],)
    if entity == "patient":
        return (row["code"].encode(),)
    return (row["patient_code"].encode(), row["seq"])


@dataclass(frozen=True)
class Expectation:
    """The destination rows and the failures of one ``ClinicData``, per entity."""

    rows: dict[str, dict[str, Row]]
    failures: dict[str, dict[str, str]]


def evaluate(data: ClinicData, timezone: str = "UTC") -> Expectation:
    """Migrate ``data`` on paper: the rows that must arrive and the ones that must fail."""
    zone = ZoneInfo(timezone)
    done: dict[str, dict[str, Row]] = {}
    failures: dict[str, dict[str, str]] = {}
    for entity in ENTITIES:
        done[entity], failures[entity] = {}, {}
        seen: dict[str, set[Any]] = {field: set() for field in UNIQUE_FIELDS.get(entity, ())}
        for key, row in sorted(data.rows[entity].items(), key=lambda i: _key_order(entity, i)):
            try:
                out = _MAPPERS[entity](row, done, zone)
                for field, values in seen.items():
                    if out[field] is not None and out[field] in values:
                        raise RowFailure(field, "unique")
            except RowFailure as failure:
                failures[entity][key] = str(failure)
                continue
            for field, values in seen.items():
                values.add(out[field])
            done[entity][key] = out
    return Expectation(rows=done, failures=failures)


def expected_destination(data: ClinicData, timezone: str = "UTC") -> dict[str, dict[str, Row]]:
    """Per entity, legacy key text → the destination row (no UUID; references as key text).

    ``timezone`` is the legacy connection's zone of naive timestamps; the results are aware
    UTC datetimes.
    """
    return evaluate(data, timezone).rows


def failure_reasons(data: ClinicData) -> dict[str, dict[str, str]]:
    """Per entity, legacy key text → why the row must fail (``'email: format'``)."""
    return evaluate(data).failures


def expected_failures(data: ClinicData) -> dict[str, set[str]]:
    """Per entity, the key texts of the rows that must fail (planted ones and their children)."""
    return {entity: set(reasons) for entity, reasons in failure_reasons(data).items()}


def expected_analysis(before: ClinicData, log: ChangeLog) -> dict[str, dict[str, set[str]]]:
    """The keys an analysis after ``log`` finds, per entity and category (docs/cli.md, analyze).

    ``before`` is a snapshot of the data taken before ``apply_changes`` and it must have been
    migrated by a run (so the record map holds ``expected_destination(before)`` and the
    quarantine ``expected_failures(before)``). Categories: new (inserted, or quarantined and
    changed since), modified, deleted (only those that had been migrated), unchanged, retry
    (quarantined and unchanged).
    """
    previous = evaluate(before)
    out: dict[str, dict[str, set[str]]] = {}
    for entity in ENTITIES:
        migrated, quarantined = set(previous.rows[entity]), set(previous.failures[entity])
        changes = log[entity]
        modified = changes.updated & migrated
        deleted = changes.deleted & migrated
        out[entity] = {
            "new": changes.inserted | (changes.updated & quarantined),
            "modified": modified,
            "deleted": deleted,
            "unchanged": migrated - modified - deleted,
            "retry": quarantined - changes.updated - changes.deleted,
        }
    return out
