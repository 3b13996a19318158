"""verify's row comparison: the same-value shortcut reports exactly what the field-by-field,
type-aware comparison reports, on random rows.

Each row has one column per kind (two floats: double and single precision); each field's
pair is drawn as NULL on either side, the very same value, an equivalent value of another
form (a Decimal of another scale, the same instant in another zone, a naive timestamp, a
float rounded to single precision, text for SQLite, an int for a bool) or a different value.
Values include NaN, infinities, 4-byte text, trailing spaces and JSON whose Python equality
is not the document's (``1`` against ``True`` or ``1.0``).

``DIFFMIG_HYPOTHESIS_PROFILE=big`` runs 200 examples instead of 25.
"""

from __future__ import annotations

import datetime as dt
import os
import struct
import uuid
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrationsapp.engine.errors import RowError
from migrationsapp.engine.introspect import ColumnInfo
from migrationsapp.engine.values import UnresolvedReference
from migrationsapp.engine.verify_compare import RowComparer

EXAMPLES = {"default": 25, "big": 200}[os.environ.get("DIFFMIG_HYPOTHESIS_PROFILE", "default")]
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _column(name: str, kind: str, sql_type: str, scale: int | None = None) -> ColumnInfo:
    return ColumnInfo(name, kind, sql_type, True, False, False, scale)


COLUMNS = {
    c.name: c
    for c in (
        _column("n_int", "integer", "BIGINT"),
        _column("n_dec", "numeric", "NUMERIC(12,2)", 2),
        _column("f_double", "float", "DOUBLE PRECISION"),
        _column("f_real", "float", "REAL"),
        _column("flag", "boolean", "BOOLEAN"),
        _column("label", "text", "TEXT"),
        _column("day", "date", "DATE"),
        _column("at", "datetime", "TIMESTAMP"),
        _column("at_tz", "datetime_tz", "TIMESTAMPTZ"),
        _column("clock", "time", "TIME"),
        _column("ident", "uuid", "UUID"),
        _column("doc", "json", "JSONB"),
        _column("blob", "bytes", "BYTEA"),
    )
}

TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "a ", "A", "😀", "\U0001d518x", "ß", "1", "true", "x\x00y"]),
)
ZONES = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-7, minutes=-30))]
)
NAIVE = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1))


def _f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _other(draw, base, kind: str):
    """A value of another form that may well be the same datum."""
    if isinstance(base, bool):
        return draw(st.sampled_from([int(base), str(base).lower(), "t" if base else "f"]))
    if isinstance(base, int):
        return draw(st.sampled_from([Decimal(base), float(base), str(base)]))
    if isinstance(base, Decimal):
        if not base.is_finite():  # NaN and sNaN neither quantize nor become floats
            return draw(st.sampled_from([str(base), Decimal("NaN")]))
        return draw(st.sampled_from([base.quantize(Decimal("0.0001")), str(base), float(base)]))
    if isinstance(base, float):
        return draw(st.sampled_from([_f32(base) if abs(base) < 1e38 else base, str(base)]))
    if isinstance(base, dt.datetime):
        if base.tzinfo is None:
            return draw(st.sampled_from([base.replace(tzinfo=dt.UTC), base.isoformat()]))
        return draw(st.sampled_from([base.astimezone(draw(ZONES)), base.replace(tzinfo=None)]))
    if isinstance(base, dt.date | dt.time):
        return base.isoformat()
    if isinstance(base, uuid.UUID):
        return draw(st.sampled_from([str(base), str(base).upper(), base.hex]))
    if kind == "json" and isinstance(base, dict):
        return {k: (1.0 if v == 1 else v) for k, v in base.items()}
    if isinstance(base, bytes):
        return draw(st.sampled_from([bytearray(base), memoryview(base), base.hex()]))
    return draw(st.sampled_from([str(base) + " ", str(base).upper()]))


VALUES = {
    "integer": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "numeric": st.decimals(
        allow_nan=True, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9
    ),
    "float": st.floats(allow_nan=True, allow_infinity=True),
    "boolean": st.booleans(),
    "text": TEXT,
    "date": st.dates(),
    "datetime": NAIVE,
    "datetime_tz": st.builds(lambda d, z: d.replace(tzinfo=z), NAIVE, ZONES),
    "time": st.times(),
    "uuid": st.uuids(),
    "json": st.one_of(
        st.dictionaries(st.sampled_from(["a", "b"]), st.sampled_from([1, True, 1.0, "1", None])),
        st.lists(st.integers(), max_size=3),
    ),
    "bytes": st.binary(max_size=8),
}


@st.composite
def pairs(draw, column: ColumnInfo):
    """(converted source value, destination value as read) for one column."""
    strategy = VALUES[column.kind]
    base = draw(strategy)
    form = draw(st.sampled_from(["same", "same", "copy", "other", "different", "null", "null"]))
    if form == "null":
        return draw(st.sampled_from([(None, None), (None, base), (base, None)]))
    if form == "same":
        return base, base
    if form == "copy":
        return base, type(base)(base) if isinstance(base, str | int | bytes) else base
    if form == "other":
        return base, _other(draw, base, column.kind)
    return base, draw(strategy)


@st.composite
def rows(draw):
    values, row = {}, {}
    for name, column in COLUMNS.items():
        values[name], row[name] = draw(pairs(column))
    if draw(st.integers(0, 9)) == 0:
        values["n_int"] = UnresolvedReference("office", "3")
    return values, row


@SETTINGS
@given(st.lists(rows(), max_size=200), st.sampled_from([None, "deleted_at"]))
def test_the_shortcut_reports_exactly_what_the_type_aware_comparison_reports(batch, soft):
    comparer = RowComparer(COLUMNS, soft)
    for index, (values, row) in enumerate(batch):
        if soft:
            row[soft] = dt.datetime(2024, 1, 1) if index % 3 == 0 else None
        key = str(index)
        assert comparer.differences(key, values, row) == comparer.compare_exactly(key, values, row)


def test_equal_values_of_every_form_make_no_difference():
    comparer = RowComparer(COLUMNS, None)
    at = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    values = {
        "n_int": 7,
        "n_dec": Decimal("85000.5"),
        "f_double": 0.1,
        "f_real": 0.1,
        "flag": True,
        "label": "Ada 😀",
        "day": dt.date(2024, 3, 1),
        "at": dt.datetime(2024, 3, 1, 12, 0),
        "at_tz": at,
        "clock": dt.time(9, 30),
        "ident": uuid.UUID(int=5),
        "doc": {"a": [1, 2]},
        "blob": b"\x00\xff",
    }
    read = dict(values, n_dec=Decimal("85000.50"), f_real=_f32(0.1), at_tz=at.astimezone(dt.UTC))
    assert comparer.differences("1", values, read) == []


def test_a_changed_field_is_reported_with_both_values_and_a_refused_row_names_its_field():
    comparer = RowComparer(COLUMNS, "deleted_at")
    values = {"label": "Ada", "n_int": 1, "doc": {"a": 1}}
    row = {"label": "Ada ", "n_int": 1, "doc": {"a": True}, "deleted_at": None}
    found = comparer.differences("k", values, row)
    assert [(d.field, d.source, d.destination) for d in found] == [
        ("label", "Ada", "Ada "),
        ("doc", {"a": 1}, {"a": True}),
    ]
    refused = comparer.differences("k", RowError("too long", field="label"), row)
    assert [(d.field, d.source, d.destination) for d in refused] == [
        ("label", "<fails: too long>", "Ada ")
    ]
