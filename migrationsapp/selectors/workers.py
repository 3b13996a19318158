"""Who executes the queued units: the workers listening on diffmig's queues.

With ``REDIS_URL`` a launched run waits in Redis until a ``diffmig worker`` takes its units;
a dashboard that shows a run "running" while no worker listens leaves the operator
guessing. ``queue_health`` says how many workers rq has registered on the units' queue
(a worker killed without a goodbye stays registered until its key expires, a few minutes)
and how many jobs wait, or why Redis could not be asked.
"""

from __future__ import annotations

from django.conf import settings

from migrationsapp.queue import port
from migrationsapp.queue.port import QueueHealth

__all__ = ["QueueHealth", "queue_health", "runs_in_workers"]


def runs_in_workers() -> bool:
    """With REDIS_URL, sessions run as RQ jobs; without it, in-process (docs/architecture.md)."""
    return bool(settings.REDIS_URL)


def queue_health() -> QueueHealth | None:
    """The workers and the waiting jobs; None when runs execute in-process (no REDIS_URL)."""
    if not runs_in_workers():
        return None
    return port.queue_health()
