"""Verifying entities in processes of their own, on the machine's other cores.

``verify`` compares entity after entity, and each comparison is Python work on one core. The
entities are independent of one another, though: with ``DIFFMIG_LOCAL_PROCESSES`` above 1
(and a PostgreSQL control database, which the processes share), ``verify_apart`` verifies
them in that many processes at once (``migrationsapp.verify_worker``), the largest first
(by their record map entries), so that the largest one starts at once and the others share
the other processes. Each process opens its own connections and returns the entity's
``EntityVerification``; the caller logs them in dependency order, as one process would.

Starting a process costs about a second (Django's start-up): below ``FROM_RECORDS`` record
map entries in all, verify stays in its own process. An entity a process could not verify
(any error) is left out of the result: the caller verifies it itself, and so reports the
error as it always does.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from django.db.models import Count

from migrationsapp import verify_worker
from migrationsapp.engine.verify_report import EntityVerification
from migrationsapp.models import RecordMap
from migrationsapp.services.runs.local_processes import control_url, process_limit

logger = logging.getLogger("diffmig.verify_processes")

# Record map entries, in all the entities asked, from which processes pay for their start.
FROM_RECORDS = 200_000


def _sizes(names: Sequence[str]) -> dict[str, int]:
    """Each entity's record map entries: how much of the work it is."""
    counted = (
        RecordMap.objects.filter(entity_type__in=names)
        .values_list("entity_type")
        .annotate(n=Count("*"))
    )
    return {name: 0 for name in names} | dict(counted)


def process_count(names: Sequence[str]) -> tuple[int, list[str]]:
    """How many processes verify ``names`` (0: none, this process does) and the order the
    entities go to them in, largest first."""
    allowed = min(process_limit(), len(names))
    if allowed < 2:
        return 0, list(names)
    sizes = _sizes(names)
    if sum(sizes.values()) < FROM_RECORDS:
        return 0, list(names)
    return allowed, sorted(names, key=lambda name: -sizes[name])


def verify_apart(
    names: Sequence[str], *, batch_size: int, cap: int
) -> dict[str, EntityVerification]:
    """The verifications of ``names`` done in processes of their own, by entity; those
    that none did (no processes, or one failed) are missing."""
    count, order = process_count(names)
    if not count:
        return {}
    results: dict[str, EntityVerification] = {}
    # spawn, never fork: a forked child would share this process's open connections.
    with ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=verify_worker.start,
        initargs=(control_url(),),
    ) as pool:
        futures = {name: pool.submit(verify_worker.verify, name, batch_size, cap) for name in order}
        for name, future in futures.items():
            try:
                result = future.result()
            except BrokenProcessPool as error:
                logger.warning("verify of %s in a process of its own stopped: %s", name, error)
                continue
            if result is not None:
                results[name] = result
    return results
