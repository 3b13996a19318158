"""Analysis stages left by a test: they are no model's tables, so the test database's flush
leaves them behind, and a later test counting stages (``cleanup``) would find them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from migrationsapp.services.analysis_stage import stage_tables


def drop_every_stage() -> None:
    for name in stage_tables():
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {connection.ops.quote_name(name)}")


@pytest.fixture
def no_stages_left() -> Iterator[None]:
    """No stage before the test, and none after it."""
    drop_every_stage()
    yield
    drop_every_stage()
