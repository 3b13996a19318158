"""The pure parts of timestamp detection: windows, overlap arithmetic, cursor advance."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from migrationsapp.engine.cursor import (
    CANNOT_SEE,
    DEFAULT_OVERLAP,
    Cursor,
    advance,
    plan_window,
    shift_back,
)

FIVE_MIN = dt.timedelta(minutes=5)


def test_the_default_overlap_is_five_minutes():
    assert DEFAULT_OVERLAP == FIVE_MIN


def test_each_mode_says_what_it_cannot_see():
    silent = "silent updates (changes that do not touch the timestamp)"
    assert CANNOT_SEE["hash"] == ""
    assert CANNOT_SEE["timestamp"] == f"hard deletes and {silent}"
    assert CANNOT_SEE["hybrid"] == silent


def test_shift_back_keeps_the_shape_of_the_text():
    assert shift_back("2024-03-01T14:00:00", FIVE_MIN, "datetime") == "2024-03-01T13:55:00"
    assert shift_back("2024-03-01 00:02:00", FIVE_MIN, "datetime") == "2024-02-29 23:57:00"
    assert (
        shift_back("2024-03-01T14:00:00+00:00", FIVE_MIN, "datetime_tz")
        == "2024-03-01T13:55:00+00:00"
    )


def test_shift_back_of_a_date_reaches_into_the_day_before():
    assert shift_back("2024-03-01", FIVE_MIN, "date") == "2024-02-29"


def test_shift_back_refuses_what_has_no_arithmetic():
    assert shift_back("17", FIVE_MIN, "integer") is None
    assert shift_back("0000-00-00 00:00:00", FIVE_MIN, "datetime") is None


def test_no_cursor_or_a_reason_means_a_full_scan():
    assert plan_window(None, column="t", kind="datetime", overlap=FIVE_MIN).is_full_scan
    cursor = Cursor("2024-03-01T14:00:00", (5,))
    window = plan_window(
        cursor, column="t", kind="datetime", overlap=FIVE_MIN, full_scan_reason="--baseline"
    )
    assert window.is_full_scan
    assert window.description == "every row (--baseline)"


def test_an_overlap_reads_from_the_cursor_minus_the_overlap_inclusive():
    cursor = Cursor("2024-03-01T14:00:00", (5,))
    window = plan_window(cursor, column="t", kind="datetime", overlap=FIVE_MIN)
    assert (window.since, window.after_key) == ("2024-03-01T13:55:00", None)


def test_no_overlap_cuts_strictly_after_the_tuple():
    cursor = Cursor("2024-03-01T14:00:00", (5, "b"))
    window = plan_window(cursor, column="t", kind="datetime", overlap=dt.timedelta(0))
    assert (window.since, window.after_key) == ("2024-03-01T14:00:00", (5, "b"))
    assert window.description == "(t, key) > (2024-03-01T14:00:00, 5/b)"


def test_a_column_without_arithmetic_uses_the_tuple_whatever_the_overlap():
    cursor = Cursor("41", (7,))
    window = plan_window(cursor, column="version", kind="integer", overlap=FIVE_MIN)
    assert (window.since, window.after_key) == ("41", (7,))


def test_the_cursor_goes_to_the_last_row_read():
    start = Cursor("2024-03-01T14:00:00", (5,))
    later = dt.datetime(2024, 3, 1, 15, 0)
    assert advance(start, (later, (2,))) == Cursor("2024-03-01T15:00:00", (2,))


def test_on_a_timestamp_tie_the_last_row_read_wins():
    start = Cursor("2024-03-01T14:00:00", (5,))
    tie = dt.datetime(2024, 3, 1, 14, 0)
    assert advance(start, (tie, (3,))) == Cursor("2024-03-01T14:00:00", (3,))


def test_the_cursor_never_goes_back_in_time():
    start = Cursor("2024-03-01T14:00:00", (5,))
    earlier = dt.datetime(2024, 3, 1, 13, 58)
    assert advance(start, (earlier, (9,))) is start
    assert advance(start, None) is start
    assert advance(None, None) is None


def test_cursors_compare_numbers_as_numbers():
    assert advance(Cursor("9", (1,)), (10, (1,))) == Cursor("10", (1,))
    assert advance(Cursor("10.5", (1,)), (Decimal("9.5"), (1,))) == Cursor("10.5", (1,))


def test_a_cursor_round_trips_through_its_stored_form():
    cursor = Cursor.at(dt.datetime(2024, 3, 1, 14, 0, tzinfo=dt.UTC), ["a/b", 3])
    assert cursor.key_text == "a\\/b/3"
    assert Cursor.from_dict(cursor.as_dict()) == cursor
    assert Cursor.from_dict(None) is None
