"""Schedules of differential migrations: create, pause, resume, delete, and fire those due.

A schedule names its entities (empty: every active one) and how often: every N hours, or a
cron expression (five fields, UTC, parsed by ``cronsim``). ``fire_due`` runs in the
watchdog's round (``services.watchdog.check``, in every worker, one at a time): each due,
unpaused schedule first moves its ``next_run_at`` on by compare-and-set — two workers never
fire one tick — then starts a differential session through ``services.runs.start_run``, as the
web and the CLI do. A tick while a session still holds one of the entities is refused by the
partial unique index on active runs: it is skipped and logged, and the second skip in a row
sends an alert. Missed ticks (no worker ran) are not made up: the next run is computed
from now.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cronsim import CronSim, CronSimError
from django.db.models import F
from django.utils import timezone

from migrationsapp.engine.errors import DiffmigError, TerminalError
from migrationsapp.models import MigrationControl, RunSchedule
from migrationsapp.models.choices import (
    ACTIVE_ENTITY_STATES,
    AuditAction,
    LogLevel,
    OperationType,
)
from migrationsapp.services.alerts import SKIPS_BEFORE_ALERT, alert_schedule_skipped
from migrationsapp.services.logs import SCHEDULE_ACTOR, log_event
from migrationsapp.services.mappings import load_active_mapping
from migrationsapp.services.runs import (
    LaunchRefusedError,
    RunOptions,
    entities_with_dependencies,
    start_run,
)
from migrationsapp.services.users import UNKNOWN_USER

MAX_INTERVAL_HOURS = 24 * 366
LAUNCHED, SKIPPED, REFUSED = "launched", "skipped", "refused"


class ScheduleRefusedError(TerminalError):
    """A schedule that cannot be stored as given (name, entities, interval or cron)."""


@dataclass(frozen=True)
class Tick:
    schedule: str
    outcome: str  # launched | skipped | refused
    message: str
    session_id: uuid.UUID | None = None


def next_run_after(*, interval_hours: int | None, cron: str, after: dt.datetime) -> dt.datetime:
    """The first time of the schedule strictly after ``after`` (UTC)."""
    if interval_hours:
        return after + dt.timedelta(hours=interval_hours)
    return next(iter(CronSim(cron, after.astimezone(dt.UTC)))).astimezone(dt.UTC)


def _checked(
    *, name: str, entities: Sequence[str], interval_hours: int | None, cron: str
) -> tuple[str, list[str], int | None, str]:
    name, cron = name.strip(), " ".join(cron.split())
    if not name:
        raise ScheduleRefusedError("a schedule needs a name")
    if bool(interval_hours) == bool(cron):
        raise ScheduleRefusedError(
            f"schedule {name!r}: give either an interval in hours or a cron expression, not "
            + ("both" if cron else "neither")
        )
    if interval_hours is not None and not 1 <= interval_hours <= MAX_INTERVAL_HOURS:
        raise ScheduleRefusedError(
            f"schedule {name!r}: the interval must be 1 to {MAX_INTERVAL_HOURS} hours"
        )
    if cron:
        try:
            CronSim(cron, timezone.now())
        except CronSimError as error:
            raise ScheduleRefusedError(
                f"schedule {name!r}: {cron!r} is not a cron expression ({error})",
                hint="Five fields, minute hour day month weekday, in UTC: 0 2 * * * is 2 am daily.",
            ) from error
    known = [spec.name for spec in load_active_mapping().mapping.entities]
    unknown = [e for e in dict.fromkeys(entities) if e not in known]
    if unknown:
        raise ScheduleRefusedError(
            f"schedule {name!r}: no active mapping for {', '.join(unknown)} "
            f"(active: {', '.join(known) or 'none'})"
        )
    return name, [e for e in known if e in set(entities)], interval_hours or None, cron


def create_schedule(
    *,
    name: str,
    entities: Sequence[str] = (),
    interval_hours: int | None = None,
    cron: str = "",
    user: str = "",
    now: dt.datetime | None = None,
) -> RunSchedule:
    """Store a schedule; its first run is one interval (or the next cron time) from now."""
    name, names, interval_hours, cron = _checked(
        name=name, entities=entities, interval_hours=interval_hours, cron=cron
    )
    if RunSchedule.objects.filter(name=name).exists():
        raise ScheduleRefusedError(f"a schedule named {name!r} exists already: choose another name")
    now = now or timezone.now()
    return RunSchedule.objects.create(
        name=name,
        entities=names,
        interval_hours=interval_hours,
        cron=cron,
        next_run_at=next_run_after(interval_hours=interval_hours, cron=cron, after=now),
        created_by=user,
    )


def pause_schedule(*, schedule_id: uuid.UUID, user: str = "") -> bool:
    """Pause; False when it was paused already (or is gone)."""
    changed = RunSchedule.objects.filter(pk=schedule_id, paused=False).update(paused=True)
    if changed:
        _log_change(schedule_id, "paused", user)
    return bool(changed)


def resume_schedule(
    *, schedule_id: uuid.UUID, user: str = "", now: dt.datetime | None = None
) -> bool:
    """Resume; the next run counts from now (ticks missed while paused are not made up)."""
    schedule = RunSchedule.objects.filter(pk=schedule_id, paused=True).first()
    if schedule is None:
        return False
    after = now or timezone.now()
    changed = RunSchedule.objects.filter(pk=schedule_id, paused=True).update(
        paused=False,
        consecutive_skips=0,
        next_run_at=next_run_after(
            interval_hours=schedule.interval_hours, cron=schedule.cron, after=after
        ),
    )
    if changed:
        _log_change(schedule_id, "resumed", user)
    return bool(changed)


def delete_schedule(*, schedule_id: uuid.UUID, user: str = "") -> bool:
    schedule = RunSchedule.objects.filter(pk=schedule_id).first()
    if schedule is None:
        return False
    deleted, _ = RunSchedule.objects.filter(pk=schedule_id).delete()
    if deleted:
        _log(
            f"schedule {schedule.name}: deleted by {user or UNKNOWN_USER}",
            action=AuditAction.SCHEDULE_CHANGED,
            actor=user or UNKNOWN_USER,
        )
    return bool(deleted)


def _log_change(schedule_id: uuid.UUID, what: str, user: str) -> None:
    name = RunSchedule.objects.filter(pk=schedule_id).values_list("name", flat=True).first()
    actor = user or UNKNOWN_USER
    _log(f"schedule {name}: {what} by {actor}", action=AuditAction.SCHEDULE_CHANGED, actor=actor)


def _log(
    message: str,
    *,
    action: AuditAction,
    actor: str = SCHEDULE_ACTOR,
    level: str = LogLevel.INFO,
    **context,
) -> None:
    log_event(
        session_id=None,
        operation=OperationType.CHECKPOINT_SAVE,
        action=action,
        actor=actor,
        level=level,
        message=message,
        context=context or None,
    )


# -- the tick ----------------------------------------------------------------------------------


def due_schedules(now: dt.datetime) -> list[RunSchedule]:
    return list(
        RunSchedule.objects.filter(paused=False, next_run_at__lte=now).order_by("next_run_at")
    )


def fire_due(*, now: dt.datetime | None = None) -> list[Tick]:
    """Fire every due schedule once (the watchdog's round); what each tick did."""
    now = now or timezone.now()
    ticks = []
    for schedule in due_schedules(now):
        following = next_run_after(
            interval_hours=schedule.interval_hours, cron=schedule.cron, after=now
        )
        claimed = RunSchedule.objects.filter(
            pk=schedule.pk, paused=False, next_run_at=schedule.next_run_at
        ).update(next_run_at=following, last_run_at=now)
        if not claimed:
            continue  # another worker fired this tick, or it was paused meanwhile
        ticks.append(_fire(schedule, now))
    return ticks


def _busy(entities: list[str]) -> bool:
    try:
        names = entities_with_dependencies(load_active_mapping(), entities or None)
    except DiffmigError:
        return False
    return MigrationControl.objects.filter(
        entity_type__in=names, state__in=ACTIVE_ENTITY_STATES
    ).exists()


def _fire(schedule: RunSchedule, now: dt.datetime) -> Tick:
    user = f"schedule {schedule.name}"
    try:
        started = start_run(
            entities=schedule.entities or None, options=RunOptions(), user=user, background=True
        )
    except LaunchRefusedError as error:
        if _busy(schedule.entities):
            return _skipped(schedule, str(error))
        return _refused(schedule, error)
    except DiffmigError as error:
        return _refused(schedule, error)
    session_id = started.session.migration_session_id
    message = f"schedule {schedule.name}: launched session {session_id}"
    RunSchedule.objects.filter(pk=schedule.pk).update(
        last_outcome=LAUNCHED, last_message=message, last_session_id=session_id, consecutive_skips=0
    )
    _log(
        message, action=AuditAction.SCHEDULE_FIRED, schedule=schedule.name, session=str(session_id)
    )
    return Tick(schedule.name, LAUNCHED, message, session_id)


def _skipped(schedule: RunSchedule, reason: str) -> Tick:
    message = f"schedule {schedule.name}: tick skipped, {reason}"
    RunSchedule.objects.filter(pk=schedule.pk).update(
        last_outcome=SKIPPED, last_message=message, consecutive_skips=F("consecutive_skips") + 1
    )
    schedule.refresh_from_db()
    _log(
        message,
        action=AuditAction.SCHEDULE_SKIPPED,
        level=LogLevel.WARN,
        schedule=schedule.name,
        skips=schedule.consecutive_skips,
    )
    if schedule.consecutive_skips == SKIPS_BEFORE_ALERT:
        alert_schedule_skipped(schedule=schedule)
    return Tick(schedule.name, SKIPPED, message)


def _refused(schedule: RunSchedule, error: DiffmigError) -> Tick:
    message = f"schedule {schedule.name}: the launch was refused: {error}" + (
        f" — {error.hint}" if error.hint else ""
    )
    RunSchedule.objects.filter(pk=schedule.pk).update(last_outcome=REFUSED, last_message=message)
    _log(message, action=AuditAction.SCHEDULE_REFUSED, level=LogLevel.ERROR, schedule=schedule.name)
    return Tick(schedule.name, REFUSED, message)
