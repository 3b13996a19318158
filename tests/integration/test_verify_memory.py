"""verify runs in memory that does not grow with the tables it compares.

Peak Python memory (tracemalloc) is measured around ``verify_entities`` only, once at 8,000
migrated records and once at 48,000 (MariaDB → PostgreSQL, PostgreSQL control database,
batches of 2,000): the second may use at most 1.5 times the first. Both sides are equal, and
the second time one destination row is extra, so that the destination pass runs as well.
Timings are not asserted (they belong in bench/).
"""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from migrationsapp.services.verify import VerifyReport, verify_entities
from tests.integration.conftest import cli
from tests.support.items_pair import ExtraColumn, items_pair

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SMALL, LARGE = 8_000, 48_000
BATCH = 2_000


@pytest.fixture
def engines(mysql_to_pg) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    with items_pair(
        mysql_to_pg, ExtraColumn("price", "DECIMAL(10,2) NULL", "NUMERIC(10,2)")
    ) as pair:
        yield pair


def _fill_and_migrate(legacy: sa.Engine, first: int, last: int) -> None:
    """Source rows ``first``..``last`` (MariaDB's sequence engine), then a run writes them."""
    with legacy.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO items (code, label, amount, price) "
            "SELECT CONCAT('IT/', LPAD(seq, 7, '0')), CONCAT(' label ', seq, ' 😀 '), "
            "IF(MOD(seq, 7) = 0, NULL, seq), IF(MOD(seq, 5) = 0, NULL, seq / 4) "
            f"FROM seq_{first}_to_{last}"
        )
    result = cli("run")
    assert result.code == 0, result.err


def _peak_of_verify() -> tuple[int, VerifyReport]:
    """Bytes allocated at the peak of one verify, above what was allocated before it."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        report = verify_entities(batch_size=BATCH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before, report


def test_verify_memory_does_not_grow_with_the_tables(engines):
    legacy, target = engines
    _fill_and_migrate(legacy, 1, SMALL)
    verify_entities(batch_size=BATCH)  # warm-up: imports and compiled statements, made once

    small_peak, small = _peak_of_verify()
    _fill_and_migrate(legacy, SMALL + 1, LARGE)
    ghost = uuid.uuid4()
    with target.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO item (id, code, label) VALUES (:id, 'ghost', 'ghost')"),
            {"id": ghost},
        )
    large_peak, large = _peak_of_verify()

    (small_item,) = small.entities
    (large_item,) = large.entities
    assert (small_item.compared, small_item.equal) == (SMALL, True)
    assert (large_item.compared, large_item.different.total) == (LARGE, 0)
    assert large_item.extra.items == [str(ghost)]
    assert large_peak <= 1.5 * small_peak, (
        f"peak {large_peak / 1e6:.1f} MB at {LARGE} rows vs {small_peak / 1e6:.1f} MB at {SMALL}"
    )
