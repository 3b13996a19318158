"""Where a launched session executes: the executor port.

With ``REDIS_URL`` a session runs as RQ jobs on the workers (``services.dispatch``).
Without it, a session launched from the web runs in a thread of the web process, and the
CLI runs it in its own process and waits.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

from django.db import close_old_connections, connection, transaction

from migrationsapp.services.dispatch import runs_in_workers, submit

logger = logging.getLogger("diffmig.executor")


def start_in_thread_after_commit(work: Callable[[], object], *, name: str, what: str) -> None:
    """Run ``work`` in a daemon thread of this process once the current transaction commits.

    The embedded default's executor (no ``REDIS_URL``): the thread opens its own database
    connection and closes it at the end. ``work`` records its own failure (a session, a
    verification); an exception that still escapes is logged with ``what``, never raised.
    """

    def body() -> None:
        close_old_connections()
        try:
            work()
        except Exception:  # the work records its own failure; this is the thread's last word
            logger.exception("%s stopped with an unexpected error", what)
        finally:
            connection.close()

    transaction.on_commit(lambda: threading.Thread(target=body, name=name, daemon=True).start())


def submit_session(*, session_id: uuid.UUID) -> None:
    """Start executing a pending or resumed session somewhere other than this request.

    Submitted after the surrounding transaction commits, so the executor sees the session.
    """
    if runs_in_workers():
        submit(session_id=session_id)
        return
    from migrationsapp.services.runs import execute_session

    start_in_thread_after_commit(
        lambda: execute_session(session_id=session_id),
        name=f"diffmig-{session_id}",
        what=f"session {session_id}",
    )
