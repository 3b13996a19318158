"""Verify as a job: launch a stored verification, execute it, keep its report per entity.

``launch_verify`` stores a pending ``VerifyRun`` and hands it to the executor: with
``REDIS_URL`` an RQ job on the low-priority queue (``jobs.run_verify_runs``), without it a
thread of the web process, as in-process runs. ``execute_verify_run`` claims a pending run by
compare-and-set (a second copy of the job does nothing), runs ``services.verify`` — the
same comparison as `diffmig verify` — and stores each entity's counts and its
``verify --json`` entry. A run that cannot verify (no active mapping, a database out of
reach) ends ``failed`` with the error, never ``running`` for ever.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from migrationsapp.engine.errors import ConfigurationError, DiffmigError
from migrationsapp.models import VerifyEntityReport, VerifyRun
from migrationsapp.models.verify_runs import VerifyState
from migrationsapp.services.dispatch import runs_in_workers
from migrationsapp.services.executor import start_in_thread_after_commit
from migrationsapp.services.mappings import load_active_mapping
from migrationsapp.services.verify import VerifyReport, verify_entities

logger = logging.getLogger("diffmig.verify")

JOB = "migrationsapp.jobs.run_verify_runs"
DAY_S = 24 * 3600


def launch_verify(
    *, entities: Sequence[str] = (), user: str = "", session_id: uuid.UUID | None = None
) -> VerifyRun:
    """Store a pending verification of ``entities`` (empty: every active one) and submit it.

    Raises ConfigurationError when there is nothing to verify or an entity has no active
    mapping (the same refusal as `diffmig verify`).
    """
    known = [spec.name for spec in load_active_mapping().mapping.entities]
    if not known:
        raise ConfigurationError(
            "there is no active mapping to verify",
            hint="Import one first: diffmig mappings import FILE",
        )
    unknown = [name for name in dict.fromkeys(entities) if name not in known]
    if unknown:
        raise ConfigurationError(
            f"no active mapping for {', '.join(unknown)} (active: {', '.join(known)})"
        )
    with transaction.atomic():
        run = VerifyRun.objects.create(
            entities=[name for name in known if name in set(entities)],
            launched_by=user,
            session_id=session_id,
        )
        submit_verify_run(run_id=run.id)
    return run


def submit_verify_run(*, run_id: uuid.UUID) -> None:
    """Execute a pending verification elsewhere than this request, once its row is committed."""
    if runs_in_workers():
        transaction.on_commit(lambda: _enqueue(run_id))
        return

    start_in_thread_after_commit(
        lambda: execute_verify_run(run_id=run_id),
        name=f"diffmig-verify-{run_id}",
        what=f"verify {run_id}",
    )


def _enqueue(run_id: uuid.UUID) -> None:
    from migrationsapp.queue import port

    try:
        port.enqueue_once_per(
            port.connection(port.low_queue_name()),
            JOB,
            key=f"diffmig:verify:{run_id}",
            period_s=DAY_S,
            value=run_id.hex,
            job_id=f"diffmig-verify-{run_id.hex}",
            timeout=settings.DIFFMIG_JOB_TIMEOUT * 6,
            failure_ttl=7 * DAY_S,
            description=f"diffmig verify {run_id}",
        )
    except Exception as error:  # Redis unreachable: the run must not stay pending for ever
        _end(run_id, VerifyState.FAILED, f"the job queue (Redis) is unreachable: {error}")


def execute_verify_run(*, run_id: uuid.UUID) -> VerifyRun:
    """Claim a pending verification, run it and store its report; the run as it ended.

    A run already claimed (another copy of the job) is returned as it is.
    """
    claimed = VerifyRun.objects.filter(pk=run_id, state=VerifyState.PENDING).update(
        state=VerifyState.RUNNING, started_at=timezone.now()
    )
    run = VerifyRun.objects.get(pk=run_id)
    if not claimed:
        return run
    try:
        report = verify_entities(entities=run.entities or None, actor=run.launched_by)
    except DiffmigError as error:
        text = str(error) + (f" — {error.hint}" if error.hint else "")
        return _end(run_id, VerifyState.FAILED, text)
    except Exception as error:
        logger.exception("verify %s failed", run_id)
        return _end(
            run_id, VerifyState.FAILED, f"unexpected error: {type(error).__name__}: {error}"
        )
    _store(run, report)
    return _end(run_id, VerifyState.EQUAL if report.equal else VerifyState.MISMATCH, "")


def run_verify_runs() -> list[str]:
    """Execute every pending verification, oldest first (the RQ job); the ids it ran."""
    done = []
    pending = VerifyRun.objects.filter(state=VerifyState.PENDING).order_by("created_at")
    for run_id in list(pending.values_list("id", flat=True)):
        if execute_verify_run(run_id=run_id).state != VerifyState.PENDING:
            done.append(str(run_id))
    return done


def _store(run: VerifyRun, report: VerifyReport) -> None:
    rows = []
    for position, result in enumerate(report.entities):
        counts = result.counts()
        rows.append(
            VerifyEntityReport(
                run=run,
                entity_type=result.entity,
                position=position,
                mapping_version=result.mapping_version,
                equal=result.equal,
                compared=counts["compared"],
                missing=counts["missing"],
                extra=counts["extra"],
                different=counts["different"],
                different_records=counts["different_records"],
                quarantined=counts["quarantined"],
                stale=counts["stale"],
                seconds=round(result.seconds, 4),
                report=result.as_dict(),
            )
        )
    VerifyEntityReport.objects.bulk_create(rows)


def _end(run_id: uuid.UUID, state: str, error: str) -> VerifyRun:
    VerifyRun.objects.filter(pk=run_id).update(state=state, error=error, finished_at=timezone.now())
    return VerifyRun.objects.get(pk=run_id)
