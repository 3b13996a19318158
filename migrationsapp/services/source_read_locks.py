"""One reader at a time for a session's analysis of an entity.

A hash analysis reads its source into a stage, slice by slice (``analysis_slices.py``), and
resumes after its last committed slice. Two processes of one session may want that read at
once: the executor reaching the entity, and the helper that reads the entities to come
ahead of it (``runs/read_ahead.py``). Each takes this lock around its read, so that a slice
is never read twice into the same stage: the executor waits for it (what the other process
read is then done), the helper does not (it goes on to the next entity).

A PostgreSQL advisory lock of the control database's connection: it is released when the
read ends, and by the server when the process dies, so a killed reader never leaves it
held. Other control databases (SQLite, the embedded default) run a session in one process:
there the lock is always granted.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

logger = logging.getLogger("diffmig.source_read_locks")


def _lock_key(session_id: uuid.UUID, entity: str) -> int:
    """The advisory lock's key: a signed 64-bit number of the session and entity."""
    digest = hashlib.blake2b(f"diffmig-read:{session_id}:{entity}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


@contextmanager
def source_read_lock(session_id: uuid.UUID, entity: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the read lock of ``entity``'s analysis in ``session_id`` while the body runs.

    Yields True when held; with ``wait=False`` it yields False at once when another process
    holds it (the body then must not read)."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = _lock_key(session_id, entity)
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
            held = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError as error:
                # The connection is gone, and the server released the lock with it.
                logger.info("source read lock of %s: not released (%s)", entity, error)
