"""The command line under hostile input: exit 2 and one line, never a traceback.

A mapping file that is not UTF-8, nests thousands of levels deep or is larger than the web
import's cap; table and column names with backticks, quotes and semicolons; and
``--max-delete-share`` values that are not a share. Each is refused (exit 2, docs/cli.md)
with one line saying what is wrong, and a refused import stores nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from migrationsapp.services.mapping_files import MAX_MAPPING_BYTES
from tests.databases import engine_for
from tests.integration.conftest import cli
from tests.support.reliability import record

ROOT = Path(__file__).resolve().parents[2]

MAPPING = """version: 1
connections:
  legacy: {{url: "${{DIFFMIG_LEGACY_URL}}"}}
  target: {{url: "${{DIFFMIG_TARGET_URL}}"}}
source: legacy
destination: target
entities:
  - name: {entity}
    source_table: {table}
    source_key: [id]
    destination_table: {destination}
    destination_key: id
    fields:
      - {{source: id, destination: legacy_id}}
      - {{source: {column}, destination: {destination_column}}}
"""
# Names a careless tool would paste into SQL: each is a real table or column below.
HOSTILE_NAMES = [
    "off`ices",
    "offices`; DROP TABLE offices; --",
    "o'ffices",
    'of"fices',
    "offices; DELETE FROM offices",
]


def yaml_text(name: str) -> str:
    """``name`` as a single-quoted YAML scalar."""
    return "'" + name.replace("'", "''") + "'"


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def import_file(tmp_path: Path, data: bytes):
    path = tmp_path / "mapping.yaml"
    path.write_bytes(data)
    return cli("mappings", "import", str(path)), path


@pytest.fixture
def nothing_stored():
    """Asserts after the test that the active mappings are what they were before it."""
    before = cli("mappings", "export").out
    yield
    assert cli("mappings", "export").out == before


@pytest.mark.embedded
@pytest.mark.django_db
def test_a_mapping_file_that_is_not_utf8_is_refused(tmp_path, nothing_stored):
    cases = [
        b"version: 1\nentities:\n  - name: caf\xe9\n",  # Latin-1
        "version: 1\n# \u00e9t\u00e9\n".encode("utf-16"),  # UTF-16 with its BOM
        b"version: 1\n\xff\xfe\x00\n",
    ]
    for data in cases:
        result, path = import_file(tmp_path, data)
        assert result.code == 2, result.err
        line = one_error_line(result.err)
        assert line.startswith(f"error: {path} is not UTF-8 text (byte 0x")
        assert line.endswith("): save it as UTF-8")
    assert one_error_line(import_file(tmp_path, cases[0])[0].err) == (
        f"error: {path} is not UTF-8 text (byte 0xe9 on line 3): save it as UTF-8"
    )
    record(
        "command line",
        "mapping file not UTF-8",
        tried=len(cases),
        held=len(cases),
        outcome="exit 2, one line naming the byte and line",
    )


@pytest.mark.embedded
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("shape", "text"),
    [
        ("10,000 nested lists", "version: " + "[" * 10_000 + "]" * 10_000 + "\n"),
        ("10,000 nested maps", "version: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n"),
        (
            "1,000 nested block lists",
            "".join(" " * i + "-\n" for i in range(1000)) + " " * 1000 + "- 1\n",
        ),
    ],
)
def test_deeply_nested_yaml_is_refused(shape, text, tmp_path, nothing_stored):
    result, _ = import_file(tmp_path, text.encode())
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert "RecursionError" not in result.err
    assert result.err.startswith("error: mapping refused:\n")
    assert "nested deeper than 64 levels" in result.err
    record(
        "command line",
        f"mapping file: {shape}",
        tried=1,
        held=1,
        outcome="exit 2: nested deeper than 64 levels",
    )


@pytest.mark.embedded
@pytest.mark.django_db
def test_the_import_has_the_web_imports_size_cap(tmp_path, nothing_stored):
    # Exactly at the cap, the file is read (and refused for what it says: it is empty).
    at_cap = b"#" * (MAX_MAPPING_BYTES - 1) + b"\n"
    result, _ = import_file(tmp_path, at_cap)
    assert result.code == 2
    assert "the mapping file is empty" in result.err

    result, path = import_file(tmp_path, at_cap + b"\n")
    assert result.code == 2
    assert one_error_line(result.err) == (
        f"error: {path} is larger than 1,000,000 bytes, the limit of a mapping file: "
        "split it by entity"
    )
    # A device that never ends is read up to the cap, not forever.
    endless = cli("mappings", "import", "/dev/zero")
    assert endless.code == 2
    assert "larger than 1,000,000 bytes" in one_error_line(endless.err)
    record(
        "command line",
        "mapping file over the size cap",
        tried=2,
        held=2,
        outcome="exit 2 after reading at most the cap (1,000,000 bytes, as on the web)",
    )


@pytest.mark.embedded
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-0.1", "1.5", "abc", "1e400"])
def test_max_delete_share_outside_zero_to_one_is_refused(value):
    result = cli("run", f"--max-delete-share={value}")
    assert result.code == 2
    line = one_error_line(result.err)
    assert line.startswith("error: argument --max-delete-share: ")
    assert line.endswith("give a share from 0 to 1, e.g. 0.05 for 5 %")
    record(
        "command line",
        "--max-delete-share not a share",
        tried=1,
        held=1,
        outcome="exit 2 before anything runs",
    )


@pytest.mark.embedded
def test_on_a_terminal_a_refused_argument_is_one_line_and_exit_2():
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DIFFMIG_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "diffmig", "run", "--max-delete-share", "nan"],
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "error: manage.py diffmig run: argument --max-delete-share: 'nan' is not a finite "
        "number: give a share from 0 to 1, e.g. 0.05 for 5 %\n"
    )


@pytest.fixture
def hostile_clinic(mysql_to_pg):
    """A MariaDB table and column for each hostile name, and PostgreSQL tables likewise."""
    legacy_url, target_url = mysql_to_pg
    legacy, target = engine_for(legacy_url), engine_for(target_url)
    my = legacy.dialect.identifier_preparer.quote_identifier
    pg = target.dialect.identifier_preparer.quote_identifier
    with legacy.begin() as conn, target.begin() as dest:
        for number, name in enumerate(HOSTILE_NAMES):
            conn.execute(sa.text(f"CREATE TABLE {my(name)} (id INT PRIMARY KEY, {my(name)} TEXT)"))
            conn.execute(
                sa.text(f"INSERT INTO {my(name)} VALUES (:id, :v)"), {"id": number, "v": name}
            )
            dest.execute(
                sa.text(
                    f"CREATE TABLE {pg(name)} (id UUID PRIMARY KEY, legacy_id INT, {pg(name)} TEXT)"
                )
            )
    yield legacy, target
    legacy.dispose()
    target.dispose()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_hostile_table_names_that_do_not_exist_are_refused(hostile_clinic, tmp_path):
    before = cli("mappings", "export").out
    tried = 0
    for name in HOSTILE_NAMES:
        missing = name + "x"
        for table, destination, column, where in [
            (missing, name, name, f"source table {missing!r} does not exist"),
            (name, missing, name, f"destination table {missing!r} does not exist"),
            (name, name, missing, f"source column {missing!r} does not exist"),
        ]:
            text = MAPPING.format(
                entity="office",
                table=yaml_text(table),
                destination=yaml_text(destination),
                column=yaml_text(column),
                destination_column=yaml_text(name),
            )
            result, _ = import_file(tmp_path, text.encode())
            assert result.code == 2, (name, result.err)
            assert "Traceback" not in result.err
            assert where in result.err, result.err
            tried += 1
    assert cli("mappings", "export").out == before
    record(
        "command line",
        "backticks, quotes and semicolons in table and column names (missing)",
        tried=tried,
        held=tried,
        outcome="exit 2 naming the table or column; nothing stored",
    )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_hostile_names_that_exist_are_migrated_as_named(hostile_clinic, tmp_path):
    _, target = hostile_clinic
    pg = target.dialect.identifier_preparer.quote_identifier
    for number, name in enumerate(HOSTILE_NAMES):
        text = MAPPING.format(
            entity=f"office{number}",
            table=yaml_text(name),
            destination=yaml_text(name),
            column=yaml_text(name),
            destination_column=yaml_text(name),
        )
        imported, _ = import_file(tmp_path, text.encode())
        assert imported.code == 0, (name, imported.err)
        run = cli("run")
        assert run.code == 0, (name, run.err)
        with target.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT legacy_id, {pg(name)} FROM {pg(name)}")).all()
        assert rows == [(number, name)]
    # Every table the statements named still holds its row: nothing was dropped or deleted.
    with hostile_clinic[0].connect() as conn:
        my = hostile_clinic[0].dialect.identifier_preparer.quote_identifier
        counts = [
            conn.execute(sa.text(f"SELECT COUNT(*) FROM {my(name)}")).scalar_one()
            for name in HOSTILE_NAMES
        ]
    assert counts == [1] * len(HOSTILE_NAMES)
    record(
        "command line",
        "backticks, quotes and semicolons in table and column names (existing)",
        tried=len(HOSTILE_NAMES),
        held=len(HOSTILE_NAMES),
        outcome="imported and migrated as named; no statement injected",
    )
