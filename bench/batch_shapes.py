"""Benchmark: what a batch's shape costs between the transform and the destination's COPY.

    .venv/bin/python bench/batch_shapes.py [--rows 5000] [--repeat 7] [--append]

A run's batch goes from the transform, through validation and references, to the COPY
encoding. Those steps compute on Python values (the exact conversions, the rules, the
record map's UUIDs, the COPY text); this measures, on one batch of the bench's patients
(destination values: two UUIDs, an integer, text, a date, an email or NULL, a boolean, a
decimal, notes or NULL), what each way of carrying the batch between them adds:

* one dict a row, turned back into columns for the COPY (diffmig before ``RowColumns``);
* a list a column (``engine.row_columns.RowColumns``): nothing to turn back;
* Arrow columns (polars, whose memory is Arrow's): the columns built from the Python values
  the steps make, and Python values again for the next step and the COPY encoder;

and, as the reference for the size of all of these, the COPY encoding itself
(``engine.copy_text.encode_columns``). Best of ``--repeat`` runs, in milliseconds a batch.
Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from operator import itemgetter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

from migrationsapp.engine.copy_text import encode_columns  # noqa: E402
from migrationsapp.engine.row_columns import RowColumns  # noqa: E402

NAMES = [
    "id",
    "doctor_id",
    "legacy_id",
    "full_name",
    "birth_date",
    "email",
    "city",
    "vip",
    "balance",
    "notes",
]


def patient_rows(count: int) -> list[dict]:
    """Destination values as the transform makes them, for ``count`` patients."""
    rows = []
    for i in range(count):
        rows.append(
            {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, f"patient/{i}"),
                "doctor_id": uuid.uuid5(uuid.NAMESPACE_URL, f"doctor/{i % 2000}"),
                "legacy_id": i,
                "full_name": f"Ana María Ñúñez {i}",
                "birth_date": dt.date(1950 + i % 60, 1 + i % 12, 1 + i % 28),
                "email": None if i % 7 == 0 else f"patient{i}@example.org",
                "city": ("Zürich", "Lyon", "Porto", "Łódź")[i % 4],
                "vip": i % 3 == 0,
                "balance": Decimal(i % 10_000) / 100,
                "notes": None if i % 2 else "ok 😀 " * (i % 5),
            }
        )
    return rows


def best(repeat: int, work: Callable[[], object]) -> float:
    """The fastest of ``repeat`` runs of ``work``, in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def to_arrow(columns: RowColumns) -> pl.DataFrame:
    # UUIDs have no Arrow type polars builds from Python values: their 16 bytes, as Arrow's
    # uuid extension type stores them.
    data = {}
    for name, values in zip(columns.names, columns.values, strict=True):
        if isinstance(values[0], uuid.UUID):
            values = [value.bytes for value in values]
        data[name] = values
    return pl.DataFrame(data, strict=False)


def from_arrow(frame: pl.DataFrame) -> list[list]:
    out = []
    for name in frame.columns:
        values = frame.get_column(name).to_list()
        if isinstance(values[0], bytes):
            values = [uuid.UUID(bytes=value) for value in values]
        out.append(values)
    return out


def measure(count: int, repeat: int) -> list[tuple[str, float]]:
    rows = patient_rows(count)
    columns = RowColumns.of_rows(rows, NAMES)
    frame = to_arrow(columns)
    assert from_arrow(frame) == [list(values) for values in columns.values]

    def dicts_to_columns() -> object:
        return list(zip(*map(itemgetter(*NAMES), rows), strict=True))

    def columns_to_dicts() -> object:
        transposed = zip(*columns.values, strict=True)
        return [dict(zip(NAMES, values, strict=True)) for values in transposed]

    def encode() -> object:
        return encode_columns(NAMES, columns.values, count=count).lines()

    return [
        ("one dict a row → columns for the COPY", best(repeat, dicts_to_columns)),
        ("columns → one dict a row (a step that reads rows)", best(repeat, columns_to_dicts)),
        ("a list a column (RowColumns): nothing to convert", 0.0),
        ("Python columns → Arrow (polars)", best(repeat, lambda: to_arrow(columns))),
        ("Arrow (polars) → Python columns", best(repeat, lambda: from_arrow(frame))),
        ("reference: the COPY text of the batch (copy_text)", best(repeat, encode)),
    ]


def report(count: int, repeat: int, results: list[tuple[str, float]]) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {stamp} — a batch's shape between the transform and the COPY, {count:,} rows",
        "",
        f"`bench/batch_shapes.py --rows {count} --repeat {repeat}` (best of {repeat}; "
        f"{platform.machine()}, Python {platform.python_version()}, polars {pl.__version__}).",
        "",
        "| step | ms a batch | µs a row |",
        "|---|---:|---:|",
    ]
    for label, ms in results:
        lines.append(f"| {label} | {ms:.2f} | {ms * 1000 / count:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="rows a batch (default 5000)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--append", action="store_true", help="add to bench/RESULTS.md")
    args = parser.parse_args(argv)
    text = report(args.rows, args.repeat, measure(args.rows, args.repeat))
    print(text)
    if args.append:
        with (ROOT / "bench" / "RESULTS.md").open("a") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
