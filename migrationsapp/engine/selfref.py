"""``reference: self``: rows that point at other rows of their own table, in a second pass.

A row's parent may come in a later batch than the row, or two rows may point at each other
(A → B → A): no batch order writes such rows with their references in place. So:

1. the upsert (``EntityRunner``) writes a self-reference directly when the parent is
   already migrated (in the record map); when the parent is in this run's change set
   instead, it writes the column NULL and keeps the link (the row's UUID, the column, the
   parent's legacy key) with the change set, in the batch's control transaction. A parent
   that is neither migrated nor in the change set fails the row at once (missing parent);
2. after every upsert batch of the entity, ``SelfLinker`` sets the kept links from the
   record map in batches (``UPDATE … SET parent = <uuid> WHERE id = <uuid>``), checkpointed
   like the upserts, so a resumed run finishes it. A parent that did not make it (it failed
   or left the source during the run) fails that one row, with the reason: the row stays
   written with the column NULL, goes to quarantine, and its record-map hash is cleared so
   that the next run tries it again. The batch goes on;
3. before hard deletes, ``unlink_before_deletes`` sets the self-reference columns of every
   row about to be deleted to NULL, so rows deleted in one run (a parent and its child, a
   cycle) go without foreign-key errors whichever batches they fall in.

The column must be nullable for this; the importer refuses a NOT NULL one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .batch_loop import UnitOutcome, run_batches
from .compile import CompiledEntity
from .errors import RowError
from .outcomes import RecordAction
from .ports import (
    DEFAULT_BATCH_SIZE,
    DELETE,
    LINK,
    ChangeSetReader,
    DestinationWriter,
    FaultHook,
    LinkBatchResult,
    LinkPorts,
    PendingLink,
    RecordMapLookup,
    RecordOutcome,
)
from .stages import StageSeconds, clock

__all__ = [
    "LINK",
    "LinkBatchResult",
    "PendingLink",
    "SelfLinker",
    "self_reference_columns",
    "unlink_before_deletes",
]


class UnlinkPorts(ChangeSetReader, RecordMapLookup, Protocol):
    """What clearing self references before deletes reads: the change set, the record map."""


@dataclass
class SelfLinker:
    """The second pass of one entity: point the kept self-references at their parents."""

    entity: str
    writer: DestinationWriter
    ports: LinkPorts
    batch_size: int = DEFAULT_BATCH_SIZE
    fault: FaultHook | None = None

    def run(self, *, after_id: int, max_batches: int | None = None) -> UnitOutcome:
        """The kept links after change ``after_id``, a batch at a time (engine.batch_loop)."""
        return run_batches(
            after_id=after_id,
            read=lambda after: self.ports.read_links(after_id=after, limit=self.batch_size),
            run_batch=self._link_batch,
            commit=self.ports.commit_links,
            stop_requested=self.ports.stop_requested,
            max_batches=max_batches,
            fault=self.fault,
        )

    def _link_batch(
        self, links: Sequence[PendingLink], stages: StageSeconds, started: float
    ) -> LinkBatchResult:
        wanted = {key for link in links for key in link.columns.values()}
        with stages.measure("validate"):  # resolving the parents' references
            parents = self.ports.lookup_uuids(self.entity, wanted, include_deleted=False)
        failures: list[RecordOutcome] = []
        # Rows grouped by the columns they set: a row whose other self-reference was
        # written directly by the upsert must not have it overwritten here.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        by_uuid: dict[uuid.UUID, PendingLink] = {}
        for link in links:
            missing = [(c, k) for c, k in sorted(link.columns.items()) if k not in parents]
            if missing:
                column, parent_key = missing[0]
                failures.append(
                    _failed(
                        link,
                        RowError(
                            f"missing parent: {self.entity} {parent_key!r} was not migrated "
                            f"(it failed or left the source in this run); {column!r} is left "
                            "empty until it is",
                            field=column,
                            rule="reference",
                            value=parent_key,
                        ),
                    )
                )
                continue
            columns = tuple(sorted(link.columns))
            row = {self.writer.key_column: link.uuid}
            row.update({c: parents[link.columns[c]] for c in columns})
            groups.setdefault(columns, []).append(row)
            by_uuid[link.uuid] = link
        linked = 0
        for columns, rows in groups.items():
            with stages.measure("write"):
                refused = self.writer.update_columns(rows, columns)
            for row_uuid, reason in refused.items():
                failures.append(_failed(by_uuid[row_uuid], RowError(reason, rule="destination")))
            linked += len(rows) - len(refused)
        return LinkBatchResult(
            entity=self.entity,
            last_change_id=links[-1].change_id,
            linked=linked,
            failures=failures,
            seconds=clock() - started,
            stages=stages,
            started=started,
        )


def self_reference_columns(compiled: CompiledEntity) -> list[str]:
    """The destination columns of ``compiled`` that hold a `reference: self`."""
    return [c for c, parent in compiled.reference_fields.items() if parent == compiled.spec.name]


def _failed(link: PendingLink, error: RowError) -> RecordOutcome:
    return RecordOutcome(
        key_text=link.key_text,
        key=link.key,
        action=RecordAction.FAILED,
        uuid=link.uuid,
        content_hash=link.content_hash,
        error=error,
        change_id=link.change_id,
    )


def unlink_before_deletes(
    *,
    entity: str,
    columns: Sequence[str],
    writer: DestinationWriter,
    ports: UnlinkPorts,
    after_id: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> int:
    """NULL the self-reference columns of every row the delete phase will delete (from
    change ``after_id`` on); returns how many rows were cleared.

    Idempotent, so a resumed delete phase simply does it again for what is left. A row
    whose delete is then refused (another table still points at it) keeps the columns
    empty; its record is gone from the source, and the next run tries the delete again.
    """
    cleared = 0
    position = after_id
    while True:
        changes = ports.read_changes(after_id=position, phase=DELETE, limit=batch_size)
        if not changes:
            return cleared
        known = ports.lookup_uuids(entity, [c.key_text for c in changes], include_deleted=False)
        writer.clear_columns(list(known.values()), columns)
        cleared += len(known)
        position = changes[-1].id
