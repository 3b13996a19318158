"""A source row's content hash, the same whichever read finds the row.

On MySQL/MariaDB and PostgreSQL the server computes it (md5 over a NULL-safe,
length-prefixed concatenation of each column's text), so only keys and 32-character
hashes cross the wire; on SQLite it is computed here from the values, with a type tag per
value. A ``Digest`` is what a read selects for it and how a row's hash is taken from that:
a full-table stream, a timestamp window and a fetch by key all use one, so a row has one
hash whatever read found it, and the record map compares alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from migrationsapp.engine.errors import TerminalError
from migrationsapp.engine.ids import encode_key
from migrationsapp.engine.introspect import ColumnInfo

_COLON = sa.literal_column("':'")
_NULL_MARK = sa.literal_column("'N'")
_MYSQL_BINARY = ("BINARY", "VARBINARY", "TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB", "BIT")


def _mysql_text(col: sa.ColumnClause, info: ColumnInfo) -> sa.ColumnElement:
    base = info.sql_type.upper().split("(")[0].strip()
    if info.kind in ("bytes", "other") or base in _MYSQL_BINARY:
        # Bytes are not text in any charset, and geometry cannot even be CAST to CHAR:
        # hex keeps every byte.
        return sa.func.hex(col)
    if base == "FLOAT":
        # A single-precision FLOAT casts to 6 significant digits, hiding a change in the
        # 7th; as a DOUBLE (`+ 0e0` works on every MySQL version) it prints exactly.
        col = col + sa.literal_column("0e0")
    # One charset for every column, or CONCAT fails on an "illegal mix of collations".
    return sa.cast(col, mysql.CHAR(charset="utf8mb4"))


def _mysql_hash(cols: Sequence[sa.ColumnClause], infos: Sequence[ColumnInfo]) -> sa.ColumnElement:
    # Each value becomes "<length>:<text>", NULL becomes "N": unambiguous once concatenated.
    pieces = []
    for col, info in zip(cols, infos, strict=True):
        text = _mysql_text(col, info)
        pieces.append(
            sa.func.coalesce(sa.func.concat(sa.func.char_length(text), _COLON, text), _NULL_MARK)
        )
    return sa.func.md5(sa.func.concat(*pieces) if pieces else sa.literal_column("''"))


def _postgresql_hash(cols: Sequence[sa.ColumnClause]) -> sa.ColumnElement:
    # `||` rather than concat(): concat() skips NULLs and takes at most 100 arguments.
    pieces: list[sa.ColumnElement] = []
    for col in cols:
        text = sa.cast(col, sa.Text)
        piece = sa.cast(sa.func.length(text), sa.Text).op("||")(_COLON).op("||")(text)
        pieces.append(sa.func.coalesce(piece, _NULL_MARK))
    if not pieces:
        return sa.func.md5(sa.literal_column("''"))
    joined = pieces[0]
    for piece in pieces[1:]:
        joined = joined.op("||")(piece)
    return sa.func.md5(joined)


def _encode_value(value: Any) -> bytes:
    # Type tag + length + payload: 1 and '1' differ, as do ('a|b','c') and ('a','b|c').
    if value is None:
        return b"N"
    if isinstance(value, bytes | bytearray | memoryview):
        tag, payload = b"b", bytes(value)
    elif isinstance(value, bool):
        tag, payload = b"?", b"1" if value else b"0"
    elif isinstance(value, int):
        tag, payload = b"i", str(value).encode()
    elif isinstance(value, float):
        tag, payload = b"f", repr(value).encode()
    elif isinstance(value, str):
        tag, payload = b"s", value.encode("utf-8", "surrogatepass")
    else:
        tag, payload = b"o", repr(value).encode("utf-8", "surrogatepass")
    return tag + str(len(payload)).encode() + b":" + payload


def python_row_hash(values: Sequence[Any]) -> str:
    """The content hash of a row computed in Python (SQLite), hex md5."""
    digest = hashlib.md5(usedforsecurity=False)
    for value in values:
        digest.update(_encode_value(value))
    return digest.hexdigest()


@dataclass(frozen=True)
class Digest:
    """The columns a read selects after the key for the hash, and the hash of a row."""

    columns: list[sa.ColumnElement]
    in_python: bool
    source: str  # "table 'x' of database 'y'", for messages

    def of(self, key: tuple, selected: Sequence[Any]) -> str:
        """The hash of the row with ``key`` whose selected ``columns`` are ``selected``."""
        if self.in_python:
            return python_row_hash(selected)
        if selected[0] is None:
            raise self.too_large(key)
        return selected[0]

    def too_large(self, key: tuple) -> TerminalError:
        """The error of a row whose server hash came back NULL: MySQL's CONCAT gives NULL past
        max_allowed_packet, which must never be hashed as ""."""
        return TerminalError(
            f"{self.source}: key {encode_key(key)!r} is too large to hash on the server; "
            "raise max_allowed_packet or hash fewer columns"
        )


def digest(
    dialect: str, cols: Sequence[sa.ColumnClause], infos: Sequence[ColumnInfo], *, source: str
) -> Digest:
    """The content hash of ``cols``, in this order: the server's md5, or (SQLite) the
    values themselves, hashed here."""
    if dialect == "sqlite":
        return Digest(list(cols), True, source)
    if dialect == "mysql":
        return Digest([_mysql_hash(cols, infos)], False, source)
    return Digest([_postgresql_hash(cols)], False, source)
