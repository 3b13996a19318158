"""verify's destination pass: the destination rows diffmig did not write, or should have deleted.

The destination table's keys are streamed from one snapshot and, per batch, looked up by
UUID in the record map. A row is *extra* when no record map entry of this entity has its
UUID (diffmig did not write it), when its entry is deleted (a delete that did not happen;
under ``deletes: soft`` a row whose soft-delete column is set is fine), or when its entry is
live but its source row is gone (a delete not yet applied; under ``deletes: report`` such
rows are kept on purpose and are not extra). Whether any source row is gone is known from
two counts: the destination rows of live records the source pass met
(``verify_source_pass.py``), and the destination rows of live entries this pass met
(neither soft-deleted). A live record's row is a live entry's row, so equal counts mean
every such row has its source row (when no two live entries share a UUID). Only when they
differ does the pass run again, checking the source with one fetch-by-key per batch.

The pass is skipped when the source pass met every destination row (as many rows met
through live records as the table holds, no UUID held by two live entries): each row then
belongs to a live record whose source row exists, and none can be extra. No Django here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from .ids import encode_key, value_text
from .values import as_uuid
from .verify_record_state import soft_deleted
from .verify_report import SOURCE_DELETED, EntityVerification, MapEntry, QuarantinedState
from .verify_state import VerifyContext


@dataclass(frozen=True)
class DestinationPass:
    """The destination pass of one entity: ``every_row_met``, else ``run``."""

    context: VerifyContext

    def every_row_met(self, rows_met: int) -> bool:
        """Whether the source pass met every destination row (``rows_met`` of them), each
        through a live record whose source row exists: then no row can be extra and the pass
        has nothing to find. The rows met are distinct when no two live entries share a UUID."""
        context = self.context
        return rows_met == context.table.count() and context.ports.live_uuids_unique(context.entity)

    def run(self, report: EntityVerification, batch_size: int, rows_of_live_records: int) -> None:
        """Reports the extra rows; ``rows_of_live_records`` is the source pass's count."""
        context = self.context
        extra_columns = [context.soft] if context.soft else []
        rows_of_live_entries = 0
        for batch in context.table.stream(extra_columns, batch_size):
            rows_of_live_entries += len(self._batch(batch, report))
        if rows_of_live_entries != rows_of_live_records or not (
            context.ports.live_uuids_unique(context.entity)
        ):
            # Some live entry's destination row may have no source row behind it: find which.
            for batch in context.table.stream(extra_columns, batch_size):
                live = self._batch(batch, None)
                if live:
                    self._check_source_gone(live, report)

    def _batch(
        self, rows: list[dict[str, Any]], report: EntityVerification | None
    ) -> list[tuple[uuid.UUID, MapEntry]]:
        """Reports the batch's extra rows (unless ``report`` is None) and returns the rows of
        live entries whose source row may be gone (not under ``deletes: report``)."""
        context = self.context
        spec = context.compiled.spec
        soft = context.soft
        by_uuid: dict[uuid.UUID, dict[str, Any]] = {}
        for row in rows:
            parsed = as_uuid(row[spec.destination_key])
            if parsed is None:
                # Not even a UUID: certainly not a row diffmig wrote.
                if report is not None:
                    report.extra.add(value_text(row[spec.destination_key]))
                continue
            by_uuid[parsed] = row
        entries = context.ports.entries_by_uuid(context.entity, list(by_uuid))
        live: list[tuple[uuid.UUID, MapEntry]] = []
        for record_uuid, row in by_uuid.items():
            entry = entries.get(record_uuid)
            deleted_softly = soft_deleted(soft, row)
            if entry is None:
                if report is not None:
                    report.extra.add(str(record_uuid))
            elif entry.deleted:
                if not deleted_softly and report is not None:
                    report.extra.add(str(record_uuid))  # the delete did not happen
            elif spec.deletes != "report" and not deleted_softly:
                live.append((record_uuid, entry))
        return live

    def _check_source_gone(
        self, live: list[tuple[uuid.UUID, MapEntry]], report: EntityVerification
    ) -> None:
        """Live records whose source row is gone: deletes not applied yet, hence extra."""
        context = self.context
        spec = context.compiled.spec
        found = context.source.fetch_rows(
            spec.source_table, spec.source_key, [tuple(e.key) for _, e in live], []
        )
        present = {encode_key(list(key)) for key in found}
        gone = [(u, e) for u, e in live if e.key_text not in present]
        if not gone:
            return
        quarantined = context.ports.quarantined(context.entity, [e.key_text for _, e in gone])
        for record_uuid, entry in gone:
            if entry.key_text in quarantined:
                # A delete the destination refused (a child still points at it): the row
                # stays until the delete succeeds.
                report.add_quarantined(
                    QuarantinedState(entry.key_text, SOURCE_DELETED, quarantined[entry.key_text])
                )
            else:
                report.extra.add(str(record_uuid))
