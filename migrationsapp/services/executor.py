"""Where a launched session executes: the executor port.

With ``REDIS_URL`` a session runs as RQ jobs on the workers (``services.dispatch``).
Without it, a session launched from the web runs in a thread of the web process, and the
CLI runs it in its own process and waits.
"""

from __future__ import annotations

import logging
import threading
import uuid

from django.db import close_old_connections, connection, transaction

from migrationsapp.services.dispatch import runs_in_workers, submit

logger = logging.getLogger("diffmig.executor")


def _run_in_thread(session_id: uuid.UUID) -> None:
    from migrationsapp.services.runs import execute_session

    close_old_connections()
    try:
        execute_session(session_id=session_id)
    except Exception:  # the session records its own failure; this is the thread's last word
        logger.exception("session %s stopped with an unexpected error", session_id)
    finally:
        connection.close()


def submit_session(*, session_id: uuid.UUID) -> None:
    """Start executing a pending or resumed session somewhere other than this request.

    Submitted after the surrounding transaction commits, so the executor sees the session.
    """
    if runs_in_workers():
        submit(session_id=session_id)
        return

    def start() -> None:
        thread = threading.Thread(
            target=_run_in_thread, args=(session_id,), name=f"diffmig-{session_id}", daemon=True
        )
        thread.start()

    transaction.on_commit(start)
