"""Where a launched or resumed session executes: the one place that chooses.

* With ``REDIS_URL``, on the workers (``services.dispatch``): a caller in the background (a
  web request, a schedule's tick) hands the session over once its transaction commits, and
  Redis being down is logged for the watchdog to make up; a caller in the foreground (the
  CLI, the demo) enqueues the first units now (Redis down raises ``QueueUnavailableError``)
  and, when it asks to wait, follows the session in the control database to its stop.
* Without, in a thread of this process after the caller's transaction commits (background),
  or here and now, told to an optional observer (foreground).
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from migrationsapp.models import MigrationStatus
from migrationsapp.models.choices import SessionStatus
from migrationsapp.services import dispatch
from migrationsapp.services.executor import start_in_thread_after_commit
from migrationsapp.services.runs.context import RunObserver
from migrationsapp.services.runs.control import prepare_resume
from migrationsapp.services.runs.execute import execute_session
from migrationsapp.services.runs.launch import RunOptions, launch_session

FOLLOW_INTERVAL_S = 0.5
# A session in one of these states no longer moves until someone acts.
STOPPED = (
    SessionStatus.COMPLETED,
    SessionStatus.FAILED,
    SessionStatus.CANCELLED,
    SessionStatus.PAUSED,
)


class Executor(enum.StrEnum):
    """Where a session executes."""

    WORKERS = "workers"  # RQ jobs on `diffmig worker` processes (REDIS_URL)
    THREAD = "thread"  # a thread of this process, started after the caller's commit
    HERE = "here"  # the calling process, before start_run returns


@dataclass(frozen=True)
class StartedRun:
    # As it stands when start_run returns: stopped when it executed here or was followed.
    session: MigrationStatus
    executor: Executor


def start_run(
    *,
    entities: Sequence[str] | None = None,
    options: RunOptions | None = None,
    user: str = "",
    background: bool = False,
    wait: bool = False,
    observer: RunObserver | None = None,
    launched: Callable[[MigrationStatus], None] | None = None,
) -> StartedRun:
    """Launch a session (``runs.launch_session``) and execute it where it belongs.

    ``background``: the caller must not wait (a web request, a schedule); else the session
    runs here when there are no workers, and with workers is followed to its stop when
    ``wait``. ``launched`` is told the session before it executes (the CLI prints its id).
    """
    session = launch_session(entities=entities, options=options, user=user)
    if launched is not None:
        launched(session)
    return _hand_over(
        session.migration_session_id, background=background, wait=wait, observer=observer
    )


def resume_run(
    *,
    session_id: uuid.UUID,
    user: str = "",
    background: bool = False,
    wait: bool = False,
    observer: RunObserver | None = None,
    resumed: Callable[[MigrationStatus], None] | None = None,
) -> StartedRun:
    """Resume a paused or failed session (``runs.prepare_resume``) and execute it where it
    belongs, as ``start_run`` does."""
    session = prepare_resume(session_id=session_id, user=user)
    if resumed is not None:
        resumed(session)
    return _hand_over(session_id, background=background, wait=wait, observer=observer)


def _hand_over(
    session_id: uuid.UUID, *, background: bool, wait: bool, observer: RunObserver | None
) -> StartedRun:
    if dispatch.runs_in_workers():
        if background:
            dispatch.submit(session_id=session_id)
        else:
            dispatch.start_session(session_id=session_id)
            if wait:
                return StartedRun(wait_until_stopped(session_id), Executor.WORKERS)
        return StartedRun(_session(session_id), Executor.WORKERS)
    if background:
        start_in_thread_after_commit(
            lambda: execute_session(session_id=session_id),
            name=f"diffmig-{session_id}",
            what=f"session {session_id}",
        )
        return StartedRun(_session(session_id), Executor.THREAD)
    return StartedRun(execute_session(session_id=session_id, observer=observer), Executor.HERE)


def _session(session_id: uuid.UUID) -> MigrationStatus:
    return MigrationStatus.objects.get(migration_session_id=session_id)


def wait_until_stopped(session_id: uuid.UUID) -> MigrationStatus:
    """Poll the control database until the session completes, fails, pauses or is cancelled."""
    while True:
        session = _session(session_id)
        if session.overall_status in STOPPED:
            return session
        time.sleep(FOLLOW_INTERVAL_S)
