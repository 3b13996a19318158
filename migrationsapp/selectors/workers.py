"""Who executes the queued units: the workers listening on diffmig's queues.

With ``REDIS_URL`` a launched run waits in Redis until a ``diffmig worker`` takes its units;
a dashboard that shows a run "running" while no worker listens leaves the operator
guessing. ``queue_health`` says how many workers rq has registered on the units' queue
(a worker killed without a goodbye stays registered until its key expires, a few minutes)
and how many jobs wait, or why Redis could not be asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import django_rq
from redis.exceptions import RedisError
from rq import Worker

from migrationsapp.services.dispatch import queue_name, runs_in_workers


@dataclass(frozen=True)
class QueueHealth:
    workers: int = 0  # registered on the units' queue
    queued: int = 0  # jobs waiting on it
    error: str = ""  # Redis could not be asked

    @property
    def stalled(self) -> bool:
        """Nothing would execute a launched run now."""
        return bool(self.error) or self.workers == 0


def queue_health() -> QueueHealth | None:
    """The workers and the waiting jobs; None when runs execute in-process (no REDIS_URL)."""
    if not runs_in_workers():
        return None
    try:
        queue = django_rq.get_queue(queue_name())
        return QueueHealth(
            workers=Worker.count(connection=queue.connection, queue=queue), queued=queue.count
        )
    except RedisError as error:
        return QueueHealth(error=str(error))
