"""Holding a source read in the middle of its result, to act on the source while it streams.

The item entity reads a view of ``item`` (``item_read``) whose ``label`` column takes a
MariaDB user lock (``GET_LOCK``, released at once) on one row far into the table. While the
test holds that lock, the server is stuck mid-result with the rows before it sent; the test
finds the statement in ``information_schema.PROCESSLIST`` (state "User lock", under the
scratch database's unique name) and acts: kills it, or changes the source and lets it go on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from tests.databases import database_name
from tests.support.groups_items import Pair
from tests.support.workers import wait_until

VIEW = "item_read"


def create_stall_view(pair: Pair, stall_id: int) -> str:
    """The view of ``item`` that waits on row ``stall_id``; returns the lock's name."""
    lock = f"{database_name(pair.legacy_url)}_stall"
    with pair.legacy.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE VIEW {VIEW} AS SELECT id, grp_id, "
            f"CONCAT(label, IF(id = {int(stall_id)}, "
            f"LEFT(GET_LOCK('{lock}', 120) + RELEASE_LOCK('{lock}'), 0), '')) AS label, "
            "amount, note FROM item"
        )
    return lock


@contextmanager
def lock_held(pair: Pair, lock: str) -> Iterator[sa.Connection]:
    """Hold the stall lock (reads of the stall row wait) until the block ends or
    ``release(conn, lock)`` is called on the yielded connection."""
    with pair.legacy.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT GET_LOCK('{lock}', 5)").scalar() == 1
        try:
            yield conn
        finally:
            release(conn, lock)


def release(conn: sa.Connection, lock: str) -> None:
    conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{lock}')")


def stalled_read(pair: Pair) -> int | None:
    """The MariaDB process id of a content-hash read waiting on the stall lock, if any."""
    with pair.legacy.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db "
                "AND STATE = 'User lock' AND INFO LIKE '%md5(%'"
            ),
            {"db": database_name(pair.legacy_url)},
        ).scalar()


def when_read_stalls(pair: Pair, act: Callable[[int], None]) -> threading.Thread:
    """A thread that waits until the analysis's read stalls, then calls ``act(process id)``."""

    def watch() -> None:
        found: list[int] = []
        wait_until(
            lambda: found.append(stalled_read(pair) or 0) or found[-1],
            timeout=60,
            what="the analysis read stalled on the user lock",
        )
        act(found[-1])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread
