"""Where a launched session executes: the executor port.

A session launched from the web runs in a thread of the web process; the CLI runs it in
its own process and waits. (RQ workers, with ``REDIS_URL``, plug in here.)
"""

from __future__ import annotations

import logging
import threading
import uuid

from django.db import close_old_connections, connection, transaction

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

    def start() -> None:
        thread = threading.Thread(
            target=_run_in_thread, args=(session_id,), name=f"diffmig-{session_id}", daemon=True
        )
        thread.start()

    transaction.on_commit(start)
