"""Reading the sources of the entities to come while the executor works on the current one.

An entity's hash analysis starts with a read of its whole source (keys and content hashes)
into a stage, slice by slice, each slice committed (``services.analysis_slices``); only then
is it classified against the record map, in the transaction that writes its change set. The
in-process executor walks the entities one after another, so while it upserts the patients
the appointments' source waits to be read, and the second core is idle.

With ``DIFFMIG_LOCAL_PROCESSES`` above 1, the executor starts one helper (``python -m
migrationsapp.read_ahead_helper``) that reads ahead the source of every hash entity the
executor has not started yet, from the last entity backwards: the executor walks forwards,
so the two meet in the middle, and the helper's reads are the ones the executor would wait
for longest (reading just ahead of it, the helper would mostly make it wait for a read in
progress). When the executor reaches an entity its read resumes the helper's: it finds the
slices committed and reads only what is left (none, once the helper is through). The two
never read the same entity at once (``services.source_read_locks``): the executor waits
for the helper's read of an entity, and the helper stops at the first entity the executor
has started.

Nothing changes in what a run finds: a source row changed after the helper read it is the
next run's change, as one changed after the executor's own read would be, and a child read
before its parents' source can only find more of its parents there. A read that fails is
left to the executor, which reads it again and reports what is wrong. The helper stops
when the session stops running, and the executor ends it when it ends itself; a helper
killed mid-slice loses that slice only (its transaction rolls back), and the executor reads
it.

PostgreSQL control databases only (the stage and the lock are PostgreSQL's), and only for the
in-process executor: RQ workers analyse in the units they run.
"""

from __future__ import annotations

import logging
import subprocess  # nosec B404
import time
import uuid

from migrationsapp.engine.mapping import EntitySpec
from migrationsapp.engine.outcomes import Phase
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import EntityState, SessionStatus
from migrationsapp.services.analysis import read_entity_source
from migrationsapp.services.key_range_baseline import reads_by_key_range
from migrationsapp.services.runs import local_processes
from migrationsapp.services.runs.context import RunContext
from migrationsapp.services.source_read_locks import source_read_lock

logger = logging.getLogger("diffmig.read_ahead")

HELPER_MODULE = "migrationsapp.read_ahead_helper"
# How long the executor gives its helper to end once asked, before it kills it.
STOP_TIMEOUT_S = 10.0


def _to_read(session_id: uuid.UUID) -> list[MigrationControl]:
    """The session's entities from the last, up to the last one the executor has started
    (it walks them in order: those before it are done or under way)."""
    entities = []
    for control in MigrationControl.objects.filter(session_id=session_id).order_by("-position"):
        if not _pending(control):
            break
        entities.append(control)
    return entities


def _pending(control: MigrationControl) -> bool:
    return control.state == EntityState.PENDING and control.phase == Phase.ANALYZE


def _not_started(control: MigrationControl) -> bool:
    control.refresh_from_db(fields=["state", "phase"])
    return _pending(control)


def _hashed(ctx: RunContext, control: MigrationControl) -> EntitySpec | None:
    """The entity's mapping when its analysis reads a hash of the whole source; None for
        timestamp and hybrid detection (their window is read in the analysis's transaction),
        for an entity the active mapping no longer has (the executor reports that), and for one
    whose upserts read its source by key range (services.key_range_baseline)."""
    spec = ctx.active.mapping.entity(control.entity_type)
    if spec is None or spec.detection != "hash":
        return None
    # A first baseline read by key range has no analysis read to do ahead.
    by_key_range = reads_by_key_range(source=ctx.source, entity=spec, dry_run=ctx.options.dry_run)
    return None if by_key_range else spec


def _session_running(session_id: uuid.UUID) -> bool:
    return MigrationStatus.objects.filter(
        migration_session_id=session_id, overall_status=SessionStatus.RUNNING
    ).exists()


def read_ahead(ctx: RunContext) -> list[str]:
    """Read the source of each hash entity of the session the executor has not started,
    the last first, until one the executor has started; the entities read, in order."""
    session_id = ctx.session.migration_session_id
    read: list[str] = []
    for control in _to_read(session_id):
        spec = _hashed(ctx, control)
        if spec is None:
            continue
        if not _session_running(session_id):
            break
        with source_read_lock(session_id, spec.name, wait=False) as held:
            if not _not_started(control):
                break  # the executor got here: it reads this one and every one before it
            if not held:
                continue  # another process reads it
            started = time.monotonic()
            try:
                read_entity_source(
                    source=ctx.source,
                    entity=spec,
                    mapping_version=ctx.mapping_version_of(control),
                    session_id=session_id,
                )
            except Exception as error:  # the executor reads it again, and reports what is wrong
                logger.warning("read ahead of %s stopped: %s", spec.name, error)
                continue
        logger.info("read ahead of %s: %.1f s", spec.name, time.monotonic() - started)
        read.append(spec.name)
    return read


def start(ctx: RunContext) -> subprocess.Popen | None:
    """The read-ahead helper of an in-process session, when the settings and the session
    call for one: two or more entities with a hash analysis still to read."""
    if local_processes.process_limit() < 2:
        return None
    session_id = ctx.session.migration_session_id
    hashed = [c for c in _to_read(session_id) if _hashed(ctx, c) is not None]
    if len(hashed) < 2:
        return None  # the executor starts on the only one at once
    return local_processes.spawn(HELPER_MODULE, str(session_id))


def stop(helper: subprocess.Popen | None) -> int | None:
    """End the helper (its committed slices stay, for the executor to resume); its exit code."""
    if helper is None:
        return None
    if helper.poll() is None:
        helper.terminate()
        try:
            return helper.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            helper.kill()
    return helper.wait()
