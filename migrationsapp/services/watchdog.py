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
   restarted, a queue emptied by hand) is enqueued anew, and a session asked to pause or
   cancel whose last holder died is ended.

Everything is a compare-and-set: two watchdogs at once do each takeover once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from migrationsapp.engine.errors import TransientError
from migrationsapp.models import MigrationControl, MigrationStatus
from migrationsapp.models.choices import EntityState, LogLevel, OperationType, SessionStatus
from migrationsapp.services import leases, runs
from migrationsapp.services.dispatch import EXECUTOR, dispatch
from migrationsapp.services.logs import log_event


@dataclass
class WatchdogReport:
    expired: list[str] = field(default_factory=list)  # "<session> <entity>" taken over
    failed: list[str] = field(default_factory=list)  # out of attempts
    dispatched: list[str] = field(default_factory=list)  # job ids enqueued

    @property
    def acted(self) -> bool:
        return bool(self.expired or self.failed or self.dispatched)


def workers_sessions() -> list[uuid.UUID]:
    """The running sessions executed by the workers (in-process runs are left alone)."""
    return list(
        MigrationStatus.objects.filter(
            overall_status=SessionStatus.RUNNING, options__executor=EXECUTOR
        ).values_list("migration_session_id", flat=True)
    )


def check(*, now: dt.datetime | None = None) -> WatchdogReport:
    """One round: take over stale leases, then dispatch every running session again."""
    now = now or timezone.now()
    report = WatchdogReport()
    sessions = workers_sessions()
    for control in leases.stale_leases(now).filter(session_id__in=sessions):
        owner, seen = control.lease_owner, _heartbeat_text(control.lease_heartbeat)
        if not leases.expire(control=control):
            continue  # renewed meanwhile, or another watchdog took it
        _taken_over(control, owner, seen, report)
    for partition in leases.stale_partition_leases(now).filter(
        migration_run__session_id__in=sessions
    ):
        owner, seen = partition.lease_owner, _heartbeat_text(partition.lease_heartbeat)
        if not leases.expire_partition(checkpoint=partition):
            continue
        control = partition.migration_run
        control.refresh_from_db()
        if control.state == EntityState.RUNNING:
            _taken_over(control, owner, seen, report, unit=partition.unit)
    for session_id in sessions:
        report.dispatched.extend(dispatch(session_id=session_id))
    return report


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
        level=LogLevel.WARN,
        message=f"{what}: its worker stopped renewing the lease (the last "
        f"heartbeat {seen}); another worker continues from the last checkpoint "
        f"(attempt {control.attempts + 1} of {limit})",
        context={"lease_owner": owner, "attempts": control.attempts, "unit": unit or None},
    )
    report.expired.append(label)


def _heartbeat_text(heartbeat: dt.datetime | None) -> str:
    return f"at {heartbeat:%Y-%m-%d %H:%M:%S} UTC" if heartbeat else "never came"
