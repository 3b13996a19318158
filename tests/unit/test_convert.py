"""Converting transformed values to the destination column's type."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrationsapp.engine.convert import KINDS, convert_value
from migrationsapp.engine.errors import RowError

UTC = dt.UTC
NEW_YORK = ZoneInfo("America/New_York")


def convert(value: Any, kind: str, *, tz: dt.tzinfo = UTC, scale: int | None = None) -> Any:
    return convert_value(value, kind, tz=tz, scale=scale, column="col")


def refused(value: Any, kind: str) -> RowError:
    with pytest.raises(RowError) as caught:
        convert(value, kind)
    return caught.value


@pytest.mark.parametrize("kind", KINDS)
def test_none_stays_none_for_every_kind(kind: str) -> None:
    assert convert(None, kind) is None


def test_an_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown column kind 'money'"):
        convert(1, "money")


def test_a_refusal_names_value_kind_column_and_rule() -> None:
    error = refused("abc", "integer")
    assert error.reason == "cannot convert 'abc' to integer"
    assert error.field == "col"
    assert error.rule == "type"
    assert error.value == "abc"
    assert str(error) == "field 'col': cannot convert 'abc' to integer"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("abc", "abc"),
        (42, "42"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0.000001"), "0.000001"),
        (1.5, "1.5"),
        (1e-07, "0.0000001"),
        (dt.date(2021, 3, 7), "2021-03-07"),
        (uuid.UUID(int=0), "00000000-0000-0000-0000-000000000000"),
        (b"caf\xc3\xa9", "café"),
    ],
)
def test_text_renders_numbers_without_exponent(given: Any, expected: str) -> None:
    assert convert(given, "text") == expected


def test_text_refuses_a_value_without_text_form() -> None:
    assert refused(object, "text").reason.startswith("cannot convert <class 'object'> to text")


@pytest.mark.parametrize(
    ("given", "expected"),
    [(7, 7), (True, 1), (False, 0), (Decimal("42.000"), 42), (42.0, 42), (" 42 ", 42),
     ("-3", -3), ("42.00", 42)],
)  # fmt: skip
def test_integer_accepts_integral_values(given: Any, expected: int) -> None:
    result = convert(given, "integer")
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("given", [4.5, Decimal("4.5"), "4.5", "abc", float("nan"), [1]])
def test_integer_refuses_fractions_and_text(given: Any) -> None:
    assert refused(given, "integer").reason == f"cannot convert {given!r} to integer"


def test_numeric_gives_decimal_quantized_half_even() -> None:
    assert convert(Decimal("2.345"), "numeric", scale=2) == Decimal("2.34")
    assert convert(Decimal("2.355"), "numeric", scale=2) == Decimal("2.36")
    assert str(convert(7, "numeric", scale=2)) == "7.00"
    assert str(convert(0.1, "numeric")) == "0.1"
    assert str(convert(" 12.50 ", "numeric")) == "12.50"
    assert str(convert(1.005, "numeric", scale=2)) == "1.00"  # via '1.005', half-even


def test_numeric_refuses_non_numbers_and_overflow() -> None:
    assert refused("abc", "numeric").reason == "cannot convert 'abc' to numeric"
    assert refused(True, "numeric").reason == "cannot convert True to numeric"
    assert refused(Decimal("NaN"), "numeric").reason == "cannot convert Decimal('NaN') to numeric"
    with pytest.raises(
        RowError, match=r"^field 'col': cannot convert Decimal\('1E\+2000'\) to numeric$"
    ):
        convert(Decimal("1E+2000"), "numeric", scale=2)


def test_float_accepts_numbers_and_number_text() -> None:
    assert convert(1.5, "float") == 1.5
    assert convert(2, "float") == 2.0
    assert convert(Decimal("0.25"), "float") == 0.25
    assert convert(" 1e3 ", "float") == 1000.0
    assert refused("x", "float").reason == "cannot convert 'x' to float"
    assert refused(True, "float").reason == "cannot convert True to float"


@pytest.mark.parametrize(
    ("given", "expected"),
    [(1, True), (0, False), ("1", True), ("0", False), ("Y", True), ("n", False),
     ("Yes", True), ("NO", False), ("TRUE", True), ("false", False), (True, True),
     (b"\x01", True), (b"\x00", False), (Decimal("1"), True)],
)  # fmt: skip
def test_boolean_reads_common_spellings(given: Any, expected: bool) -> None:
    assert convert(given, "boolean") is expected


@pytest.mark.parametrize("given", [2, "maybe", "", b"\x02"])
def test_boolean_refuses_anything_else(given: Any) -> None:
    assert refused(given, "boolean").reason == f"cannot convert {given!r} to boolean"


def test_date_from_date_datetime_and_iso_text() -> None:
    assert convert(dt.date(2021, 3, 7), "date") == dt.date(2021, 3, 7)
    assert convert(dt.datetime(2021, 3, 7, 23, 0), "date") == dt.date(2021, 3, 7)
    assert convert("2021-03-07", "date") == dt.date(2021, 3, 7)
    assert convert("2021-03-07T10:00:00", "date") == dt.date(2021, 3, 7)
    assert refused("07/03/2021", "date").reason == "cannot convert '07/03/2021' to date"
    assert refused(20210307, "date").reason == "cannot convert 20210307 to date"


def test_naive_datetime_column_keeps_wall_clock_time() -> None:
    naive = dt.datetime(2021, 7, 1, 12, 0)
    assert convert(naive, "datetime", tz=NEW_YORK) == naive
    aware = dt.datetime(2021, 7, 1, 16, 0, tzinfo=UTC)
    assert convert(aware, "datetime", tz=NEW_YORK) == dt.datetime(2021, 7, 1, 12, 0)
    assert convert(dt.date(2021, 7, 1), "datetime") == dt.datetime(2021, 7, 1)
    assert convert("2021-07-01 12:00", "datetime") == naive
    assert refused("noon", "datetime").reason == "cannot convert 'noon' to datetime"


@pytest.mark.parametrize(
    ("naive", "utc"),
    [
        # Winter: EST, UTC-5.
        (dt.datetime(2021, 1, 15, 9, 0), dt.datetime(2021, 1, 15, 14, 0)),
        # The night clocks spring forward (2021-03-14 02:00 EST -> 03:00 EDT).
        (dt.datetime(2021, 3, 14, 1, 30), dt.datetime(2021, 3, 14, 6, 30)),
        (dt.datetime(2021, 3, 14, 3, 30), dt.datetime(2021, 3, 14, 7, 30)),
        # Summer: EDT, UTC-4.
        (dt.datetime(2021, 7, 1, 12, 0), dt.datetime(2021, 7, 1, 16, 0)),
        # The ambiguous hour when clocks fall back takes its first (EDT) occurrence.
        (dt.datetime(2021, 11, 7, 1, 30), dt.datetime(2021, 11, 7, 5, 30)),
        (dt.datetime(2021, 11, 7, 3, 0), dt.datetime(2021, 11, 7, 8, 0)),
    ],
)
def test_naive_datetime_becomes_timestamptz_in_the_source_zone_across_dst(
    naive: dt.datetime, utc: dt.datetime
) -> None:
    result = convert(naive, "datetime_tz", tz=NEW_YORK)
    assert result.tzinfo is NEW_YORK
    assert result.replace(tzinfo=None) == naive
    assert result.astimezone(UTC) == utc.replace(tzinfo=UTC)


def test_datetime_tz_keeps_aware_values_and_parses_iso_text() -> None:
    aware = dt.datetime(2021, 7, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert convert(aware, "datetime_tz", tz=NEW_YORK) is aware
    parsed = convert("2021-07-01T12:00:00+00:00", "datetime_tz", tz=NEW_YORK)
    assert parsed == dt.datetime(2021, 7, 1, 12, 0, tzinfo=UTC)
    naive_text = convert("2021-01-15 09:00", "datetime_tz", tz=NEW_YORK)
    assert naive_text.astimezone(UTC) == dt.datetime(2021, 1, 15, 14, 0, tzinfo=UTC)
    midnight = convert(dt.date(2021, 7, 1), "datetime_tz", tz=NEW_YORK)
    assert midnight == dt.datetime(2021, 7, 1, 0, 0, tzinfo=NEW_YORK)
    assert midnight.astimezone(UTC) == dt.datetime(2021, 7, 1, 4, 0, tzinfo=UTC)
    assert refused(1625140800, "datetime_tz").reason == "cannot convert 1625140800 to datetime_tz"


def test_time_from_time_datetime_timedelta_and_text() -> None:
    assert convert(dt.time(9, 30), "time") == dt.time(9, 30)
    assert convert(dt.datetime(2021, 1, 1, 9, 30), "time") == dt.time(9, 30)
    assert convert(dt.timedelta(hours=9, minutes=30), "time") == dt.time(9, 30)
    assert convert("09:30:15", "time") == dt.time(9, 30, 15)
    assert refused(dt.timedelta(hours=25), "time").reason == (
        "cannot convert datetime.timedelta(days=1, seconds=3600) to time"
    )


def test_uuid_from_uuid_text_and_bytes() -> None:
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert convert(value, "uuid") is value
    assert convert(" 12345678-1234-5678-1234-567812345678 ", "uuid") == value
    assert convert(value.bytes, "uuid") == value
    assert refused("not-a-uuid", "uuid").reason == "cannot convert 'not-a-uuid' to uuid"


def test_json_keeps_json_values() -> None:
    document = {"a": [1, 2]}
    assert convert(document, "json") is document
    assert convert([1], "json") == [1]
    assert convert("x", "json") == "x"
    assert convert(1.5, "json") == 1.5
    assert convert((1, 2), "json") == [1, 2]
    assert refused(dt.date(2021, 1, 1), "json").reason == (
        "cannot convert datetime.date(2021, 1, 1) to json"
    )


def test_bytes_and_other() -> None:
    assert convert(b"ab", "bytes") == b"ab"
    assert convert(bytearray(b"ab"), "bytes") == b"ab"
    assert convert(memoryview(b"ab"), "bytes") == b"ab"
    assert convert("é", "bytes") == b"\xc3\xa9"
    assert refused(5, "bytes").reason == "cannot convert 5 to bytes"
    marker = object()
    assert convert(marker, "other") is marker


def test_a_long_value_is_cut_short_in_the_message() -> None:
    reason = refused("x" * 500, "integer").reason
    assert len(reason) < 160
    assert reason.endswith("… to integer")


@settings(max_examples=25, deadline=None)
@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=4, max_value=10**9, min_value=-(10**9)
    )
)
def test_numeric_text_round_trips(value: Decimal) -> None:
    assert convert(convert(value, "text"), "numeric") == value
