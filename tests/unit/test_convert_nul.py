"""A NUL byte in a text value fails its row in conversion, naming the field."""

from __future__ import annotations

import datetime as dt

import pytest

from migrationsapp.engine.convert import NUL_REASON, convert_value
from migrationsapp.engine.errors import RowError


@pytest.mark.parametrize("value", ["a\x00b", "\x00", b"bytes\x00too"])
def test_text_with_a_nul_byte_fails_naming_the_field(value):
    with pytest.raises(RowError) as refused:
        convert_value(value, "text", tz=dt.UTC, column="note")

    assert refused.value.field == "note"
    assert refused.value.rule == "type"
    assert refused.value.reason.startswith(NUL_REASON + ": ")


def test_text_without_a_nul_byte_converts():
    assert convert_value("a\\x00b ok 😀", "text", tz=dt.UTC, column="note") == "a\\x00b ok 😀"
