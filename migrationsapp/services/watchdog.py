"""The watchdog: units whose worker died, and units that Redis lost.

``check`` runs every ``DIFFMIG_WATCHDOG_INTERVAL`` seconds in every ``diffmig worker`` (one
of them at a time), or in ``diffmig watchdog`` where no worker runs it. For the sessions the
workers execute it

1. takes away the leases whose heartbeat is older than ``DIFFMIG_LEASE_TIMEOUT`` (their
   worker was killed or lost its connection), logs ``checkpoint_restore`` and counts the
   attempt; at ``DIFFMIG_MAX_ATTEMPTS`` lost workers the entity fails with that reason
   (its dependants are then blocked by the dispatch). The partitions of a large entity
   (services.partitions) have leases of their own, taken over the same way (the attempts
   count on their entity run);
2. dispatches every running session again: a ready unit whose job is gone (Redis
   restarted, a queue emptied by hand, a unit stopped on an error) is enqueued anew and the
   session's log says so, and a session asked to pause or cancel whose last holder died is
   ended;
3. starts a session still ``pending`` ``DIFFMIG_LEASE_TIMEOUT`` seconds after its launch:
   the process that launched it stopped before handing it to the workers (a launch commits
   first and enqueues after), and a pending session would hold its entities for ever;
4. fires the schedules that are due (``services.run_schedules.fire_due``).

Everything is a compare-and-set: two watchdogs at once do each takeover once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from migrationsapp.engine.errors import StateTransitionError, TransientError
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import (
    AuditAction,
    EntityState,
    LogLevel,
    OperationType,
    SessionStatus,
)
from migrationsapp.services import leases, run_schedules, runs
from migrationsapp.services.dispatch import EXECUTOR, dispatch, start_session
from migrationsapp.services.logs import WORKER_ACTOR, log_event
from migrationsapp.services.state import transition_session


@dataclass
class WatchdogReport:
    expired: list[str] = field(default_factory=list)  # "<session> <entity>" taken over
    failed: list[str] = field(default_factory=list)  # out of attempts
    dispatched: list[str] = field(default_factory=list)  # job ids enqueued
    started: list[str] = field(default_factory=list)  # orphaned pending sessions started
    schedules: list[run_schedules.Tick] = field(default_factory=list)  # due schedules fired

    @property
    def acted(self) -> bool:
        return bool(
            self.expired or self.failed or self.dispatched or self.started or self.schedules
        )


def workers_sessions() -> list[uuid.UUID]:
    """The running sessions executed by the workers (in-process runs are left alone)."""
    return list(
        MigrationStatus.objects.filter(
            overall_status=SessionStatus.RUNNING, options__executor=EXECUTOR
        ).values_list("migration_session_id", flat=True)
    )


def orphaned_sessions(now: dt.datetime) -> list[uuid.UUID]:
    """Sessions launched longer than a lease ago that no process started."""
    launched_before = now - dt.timedelta(seconds=settings.DIFFMIG_LEASE_TIMEOUT)
    return list(
        MigrationStatus.objects.filter(
            overall_status=SessionStatus.PENDING, created_at__lt=launched_before
        ).values_list("migration_session_id", flat=True)
    )


def check(*, now: dt.datetime | None = None) -> WatchdogReport:
    """One round: start orphaned launches, take over stale leases, then dispatch every
    running session again."""
    now = now or timezone.now()
    report = WatchdogReport()
    for session_id in orphaned_sessions(now):
        _start_orphan(session_id, report)
    sessions = workers_sessions()
    taken_over: set[uuid.UUID] = set()  # entity runs whose new job the takeover's log explains
    for control in leases.stale_leases(now).filter(session_id__in=sessions):
        owner, seen = control.lease_owner, _heartbeat_text(control.lease_heartbeat)
        if not leases.expire(control=control):
            continue  # renewed meanwhile, or another watchdog took it
        taken_over.add(control.pk)
        _taken_over(control, owner, seen, report)
    for partition in leases.stale_partition_leases(now).filter(
        migration_run__session_id__in=sessions
    ):
        owner, seen = partition.lease_owner, _heartbeat_text(partition.lease_heartbeat)
        if not leases.expire_partition(checkpoint=partition):
            continue
        control = partition.migration_run
        control.refresh_from_db()
        taken_over.add(control.pk)
        if control.state == EntityState.RUNNING:
            _taken_over(control, owner, seen, report, unit=partition.unit)
    for session_id in sessions:
        enqueued = dispatch(session_id=session_id)
        report.dispatched.extend(enqueued)
        _log_lost_jobs(session_id, [job for job in enqueued if not _for_any(job, taken_over)])
    report.schedules = run_schedules.fire_due(now=now)  # after the dispatch: new sessions start
    return report


def _start_orphan(session_id: uuid.UUID, report: WatchdogReport) -> None:
    """Start a launch whose launcher died between its commit and handing it over."""
    try:
        session = transition_session(
            session_id=session_id, to=SessionStatus.RUNNING, expected=SessionStatus.PENDING
        )
    except StateTransitionError:
        return  # its launcher (or another watchdog) started it meanwhile
    log_event(
        session_id=session_id,
        operation=OperationType.CHECKPOINT_RESTORE,
        action=AuditAction.SESSION_NEVER_STARTED,
        actor=WORKER_ACTOR,
        level=LogLevel.WARN,
        message=f"launched at {session.created_at:%Y-%m-%d %H:%M:%S} UTC but never started "
        "(the process that launched it stopped before handing it to the workers); the "
        "watchdog started it",
        context={"launched_by": session.launched_by},
    )
    report.started.append(str(session_id))
    report.dispatched.extend(start_session(session_id=session_id))


def _for_any(job_id: str, control_ids: set[uuid.UUID]) -> bool:
    return any(control_id.hex in job_id for control_id in control_ids)


def _log_lost_jobs(session_id: uuid.UUID, job_ids: list[str]) -> None:
    """Ready units with no job in the queue: Redis restarted, or a unit stopped on an error
    (its own entry says so). Info, not a warning: a unit that has just ended may also be a
    moment away from enqueueing its continuation itself."""
    if not job_ids:
        return
    log_event(
        session_id=session_id,
        operation=OperationType.CHECKPOINT_RESTORE,
        action=AuditAction.UNIT_REQUEUED,
        actor=WORKER_ACTOR,
        level=LogLevel.INFO,
        message=f"the watchdog enqueued {len(job_ids)} ready unit(s) that had no job in the "
        "queue; they continue from their last checkpoint",
        context={"jobs": job_ids},
    )


def _taken_over(
    control: MigrationControl, owner: str, seen: str, report: WatchdogReport, unit: str = ""
) -> None:
    """After a stale lease was taken away: log the takeover, or fail the entity at the limit."""
    control.refresh_from_db()
    label = f"{control.session_id} {control.entity_type}" + (f" {unit}" if unit else "")
    what = f"{control.entity_type}" + (f" ({unit})" if unit else "")
    limit = settings.DIFFMIG_MAX_ATTEMPTS
    if control.attempts >= limit:
        runs.fail_entity(
            control=control,
            error=TransientError(
                f"{what}: its worker stopped renewing the lease "
                f"{control.attempts} times (the last heartbeat {seen}); given up",
                hint="Look at the workers' logs, then `diffmig resume` continues from "
                "the last checkpoint.",
            ),
        )
        report.failed.append(label)
        return
    log_event(
        session_id=control.session_id,
        entity=control.entity_type,
        operation=OperationType.CHECKPOINT_RESTORE,
        action=AuditAction.UNIT_TAKEN_OVER,
        actor=WORKER_ACTOR,
        level=LogLevel.WARN,
        message=f"{what}: its worker stopped renewing the lease (the last "
        f"heartbeat {seen}); another worker continues from the last checkpoint "
        f"(attempt {control.attempts + 1} of {limit})",
        context={"lease_owner": owner, "attempts": control.attempts, "unit": unit or None},
    )
    report.expired.append(label)


def _heartbeat_text(heartbeat: dt.datetime | None) -> str:
    return f"at {heartbeat:%Y-%m-%d %H:%M:%S} UTC" if heartbeat else "never came"
