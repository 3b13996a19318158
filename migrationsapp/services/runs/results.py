"""How one step of an entity, or one unit of a session on the workers, ended.

The engine says how its batch loop ended (``engine.outcomes.UnitStatus``: done, slice,
paused, cancelled); the steps of ``services.runs`` add ``lost``, and a unit run as an RQ job
(``services.units``) adds what it found before it began and how it failed. The values of the
shared members are the engine's, so ``UnitResult(outcome.status)`` converts one.
"""

from __future__ import annotations

import enum


class UnitResult(enum.StrEnum):
    """How a step or a unit ended."""

    DONE = "done"  # its work is finished; the session goes on (dispatched again)
    SLICE = "slice"  # it ran its most batches for one job; a continuation is dispatched
    PAUSED = "paused"  # it stopped between batches, as an operator asked
    CANCELLED = "cancelled"  # likewise, for a cancel request
    LOST = "lost"  # its lease was taken away meanwhile: it stopped without writing
    STOPPED = "stopped"  # asked to pause or cancel before it began
    IDLE = "idle"  # the session or the entity no longer runs
    STALE = "stale"  # another copy already ran this slice (the checkpoint moved)
    BUSY = "busy"  # another copy holds the lease
    ERROR = "error"  # it stopped on an error at its last checkpoint; the watchdog retries
    FAILED = "failed"  # out of attempts: its entity failed


# How a session that stopped as asked ends (``finish.finish_session``'s ``stopped``).
STOPPED_AS_ASKED = (UnitResult.PAUSED, UnitResult.CANCELLED)
