"""Verifying entities in processes of their own, on the machine's other cores.

``verify`` compares entity after entity, and each comparison is Python work on one core. The
entities are independent of one another, though: with ``DIFFMIG_LOCAL_PROCESSES`` above 1
(and a PostgreSQL control database, which the processes share), ``verify_apart`` verifies
them in that many processes at once (``migrationsapp.verify_worker``), the largest first
(by their record map entries), so that the largest one starts at once and the others share
the other processes. Each process opens its own connections and returns the entity's
``EntityVerification``; the caller logs them in dependency order, as one process would.

A large entity would keep one process busy while the others are done: one whose source's
primary key is its integer ``source_key`` (engine.reads_key_range) is cut into ranges of
its keys (``plan``), each range's source pass a job of its own (``SourcePart``), and the
caller finishes it with the parts in key order: their counts added, their listed records
one after another, then the destination pass, which is skipped when the parts met every
destination row. The report is the one-process report.

Starting a process costs about a second (Django's start-up): below ``FROM_RECORDS`` record
map entries in all, verify stays in its own process. An entity a process could not verify
(any error) is left out of the result: the caller verifies it itself, and so reports the
error as it always does.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from django.db.models import Count

from migrationsapp import verify_worker
from migrationsapp.engine.connectors import Database
from migrationsapp.engine.mapping import EntitySpec
from migrationsapp.engine.reads import KeyBounds
from migrationsapp.engine.reads_key_range import key_range_cuts, key_range_refusal
from migrationsapp.engine.verify import SourcePart
from migrationsapp.engine.verify_report import EntityVerification
from migrationsapp.models import RecordMap
from migrationsapp.services.databases import open_named
from migrationsapp.services.mappings import ActiveMapping
from migrationsapp.services.runs.local_processes import control_url, process_limit

logger = logging.getLogger("diffmig.verify_processes")

# Record map entries, in all the entities asked, from which processes pay for their start.
FROM_RECORDS = 200_000
# An entity is verified in ranges of its keys, in several processes, when it holds more
# record map entries than a part: a share of the whole (each process gets about
# PARTS_PER_PROCESS of them, so that they end together), at least PART_RECORDS.
PART_RECORDS = 100_000
PARTS_PER_PROCESS = 2


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


@dataclass(frozen=True)
class Job:
    """What one process verifies: an entity, or one range of its keys (its source pass)."""

    entity: str
    size: int
    within: KeyBounds | None = None


def plan(active: ActiveMapping, names: Sequence[str], processes: int) -> list[Job]:
    """The jobs of ``processes`` processes, largest first: an entity of more record map
    entries than a part (a share of the whole, at least ``PART_RECORDS``) whose source is
    read by key range (engine.reads_key_range) in ranges of about a part each, any other
    whole."""
    sizes = _sizes(names)
    part = max(PART_RECORDS, math.ceil(sum(sizes.values()) / (PARTS_PER_PROCESS * processes)))
    jobs: list[Job] = []
    with closing(open_named(active.mapping.source)) as source:
        for name in names:
            size = sizes[name]
            ranges = _key_ranges(source, active.entity(name), size, part) if size > part else []
            if ranges:
                share = math.ceil(size / len(ranges))
                jobs += [Job(name, share, within) for within in ranges]
            else:
                jobs.append(Job(name, size))
    return sorted(jobs, key=lambda job: -job.size)


def _key_ranges(source: Database, spec: EntitySpec, size: int, part: int) -> list[KeyBounds]:
    """The entity's source cut into ranges of about ``part`` rows (none: it is not cut)."""
    table, key = spec.source_table, tuple(spec.source_key)
    if key_range_refusal(source, table, key) is not None:
        return []
    _, cuts = key_range_cuts(source, table, key, every=math.ceil(size / math.ceil(size / part)))
    edges: list[tuple | None] = [None, *cuts, None]
    return [KeyBounds(key, edges[i], edges[i + 1]) for i in range(len(edges) - 1)] if cuts else []


def verify_apart(
    active: ActiveMapping,
    names: Sequence[str],
    *,
    batch_size: int,
    cap: int,
    finish: Callable[[str, list[SourcePart]], EntityVerification],
) -> dict[str, EntityVerification]:
    """The verifications of ``names`` done in processes of their own, by entity; those
    that none did (no processes, or one failed) are missing. An entity verified in ranges
    of its keys is then finished by ``finish`` (services.verify.finish_here) with its
    parts in key order: their reports one after another, then its destination pass."""
    count, order = process_count(names)
    if not count:
        return {}
    jobs = plan(active, order, count)
    results: dict[str, EntityVerification] = {}
    parts: dict[str, list[tuple[Job, Any]]] = {}
    # spawn, never fork: a forked child would share this process's open connections.
    with ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=verify_worker.start,
        initargs=(control_url(),),
    ) as pool:
        futures = [(job, pool.submit(*_call(job, batch_size, cap))) for job in jobs]
        for job, future in futures:
            try:
                result = future.result()
            except BrokenProcessPool as error:
                logger.warning(
                    "verify of %s in a process of its own stopped: %s", job.entity, error
                )
                result = None
            if job.within is None:
                if result is not None:
                    results[job.entity] = result
            else:
                parts.setdefault(job.entity, []).append((job, result))
    for name, done in parts.items():
        if all(result is not None for _, result in done):
            in_order = sorted(done, key=lambda item: _order(item[0].within))
            results[name] = finish(name, [result for _, result in in_order])
    return results


def _call(job: Job, batch_size: int, cap: int) -> tuple:
    """The worker's function and arguments for ``job``."""
    if job.within is None:
        return verify_worker.verify, job.entity, batch_size, cap
    within = job.within
    return (
        verify_worker.verify_part,
        job.entity,
        within.columns,
        within.start,
        within.end,
        batch_size,
        cap,
    )


def _order(within: KeyBounds | None) -> tuple:
    """A range's place among its entity's ranges: the first has no start."""
    return (0,) if within is None or within.start is None else (1, *within.start)
