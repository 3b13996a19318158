"""A mapping file's bytes to its text: one size cap and one encoding rule for every importer.

The command line (``diffmig mappings import FILE``) and the web import (an upload) read a
file the same way: at most ``MAX_MAPPING_BYTES`` (a mapping of hundreds of entities is far
smaller), UTF-8, and a refusal that says which of the two failed.
"""

from __future__ import annotations

from migrationsapp.engine.errors import ConfigurationError

MAX_MAPPING_BYTES = 1_000_000


def mapping_text(data: bytes, *, name: str) -> str:
    """The text of a mapping file's ``data`` (read up to one byte past the cap)."""
    if len(data) > MAX_MAPPING_BYTES:
        raise ConfigurationError(
            f"{name} is larger than {MAX_MAPPING_BYTES:,} bytes, the limit of a mapping file: "
            "split it by entity"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigurationError(
            f"{name} is not UTF-8 text (byte {data[error.start]:#04x} on line {line}): "
            "save it as UTF-8"
        ) from error


def read_mapping_file(path: str) -> str:
    """The text of the mapping file at ``path``, never reading more than the cap allows."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MAPPING_BYTES + 1)
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from error
    return mapping_text(data, name=path)
