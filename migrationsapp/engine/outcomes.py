"""The engine's vocabulary of results, shared with the services: enums, not strings.

Each is a ``StrEnum``, so a value read back from the control database (a checkpoint's
``phase``, a record event's ``action``) compares equal to its member, and one written to
the database or to JSON is its plain lower-case value.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    """Where an entity's run stands (``MigrationControl.phase``, a checkpoint's unit)."""

    ANALYZE = "analyze"  # the change set is being computed
    UPSERT = "upsert"  # new, modified and retried records are written
    LINK = "link"  # the second pass of `reference: self`
    DELETE = "delete"  # deleted records are removed (or soft-deleted, or reported)
    DONE = "done"  # nothing left to do for the entity


class RecordAction(enum.StrEnum):
    """What a batch did to one record (a record event's ``action``)."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    FAILED = "failed"
    SKIPPED = "skipped"


# The actions that count as processed (written to the destination).
WRITTEN_ACTIONS = (RecordAction.CREATED, RecordAction.UPDATED, RecordAction.DELETED)


class UnitStatus(enum.StrEnum):
    """How the runner's loop over one unit (a phase, or a partition) ended."""

    DONE = "done"  # its change set is exhausted
    SLICE = "slice"  # it ran its most batches for one step; the next step continues
    PAUSED = "paused"  # an operator's pause request was honoured between batches
    CANCELLED = "cancelled"  # an operator's cancel request was honoured between batches


class StopRequest(enum.StrEnum):
    """What an operator asked of a running session (``ControlSignal.stop_requested``)."""

    NONE = "none"
    PAUSE = "pause"
    CANCEL = "cancel"

    @property
    def stopped_as(self) -> UnitStatus | None:
        """How a unit that honours the request ends, or None when nothing was asked."""
        return {StopRequest.PAUSE: UnitStatus.PAUSED, StopRequest.CANCEL: UnitStatus.CANCELLED}.get(
            self
        )
