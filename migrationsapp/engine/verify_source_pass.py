"""verify's source pass: every source record against its destination row, a batch at a time.

The source table is streamed from one snapshot. For each batch, the keys' texts are made a
column at a time (``key_texts.py``), the record map entries of the keys and their open
quarantine entries are looked up in the control database (one query each), the rows go
through the row pipeline of a run (``row_pipeline.py``: one ``transform_batch`` call, the
columnar path where the mapping has one, with its exact row-wise fallback; references
translated into the parents' UUIDs through the record map, each parent key asked once
(``verify_parents.py``), an unresolved one marked, never a failure) while the destination
rows of the batch are fetched by UUID (one query, one index probe per UUID; on PostgreSQL on
a thread of its own, so that the query's time in the server overlaps the pipeline's). Each
source record then ends up as *quarantined* (open quarantine: reported apart with its
destination state, ``verify_record_state.py``), *missing* (no live record map entry, or no
destination row) or *compared* field by field, adding one *different* per field that does
not match; a compared record written under another mapping version than the active one (an
older one; or a newer one after a rollback) is also *stale*. Stale rows are compared all the
same: only missing, extra and different are mismatches.

The pass also counts the destination rows it met, for the destination pass
(``verify_destination_pass.py``). No Django here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, cast

from .errors import RowError
from .key_texts import key_texts, value_key_texts
from .row_pipeline import RowPipeline
from .verify_record_state import at_last_migrated, quarantined_state
from .verify_report import NOT_MIGRATED, EntityVerification, MapEntry, QuarantinedState
from .verify_state import VerifyContext


@dataclass
class SourcePass:
    """The source pass of one entity; ``run`` fills the report and the counts below."""

    context: VerifyContext
    rows: RowPipeline
    # Destination rows met through live records (soft-deleted ones too), and those of them
    # not soft-deleted: the destination pass compares these with what it finds.
    rows_met: int = 0
    rows_of_live_records: int = 0

    def run(self, report: EntityVerification, batch_size: int) -> None:
        compiled = self.context.compiled
        spec = compiled.spec
        columns = list(dict.fromkeys([*spec.source_key, *compiled.source_columns]))
        for batch in self.context.source.stream_rows(
            spec.source_table, columns, batch_size=batch_size
        ):
            self._batch(batch, report)

    def _batch(self, rows: list[dict[str, Any]], report: EntityVerification) -> None:
        context = self.context
        texts = _key_texts(rows, context.compiled.spec.source_key)
        quarantined = context.ports.quarantined(context.entity, texts)
        entries = context.ports.entries_by_key(context.entity, texts)
        unchanged = at_last_migrated(context, texts, rows, quarantined, entries)
        live_texts, live, live_rows = self._live(texts, rows, entries, quarantined, report)
        if not live:
            return
        # Every record with a live entry goes through the pipeline (quarantined ones too:
        # their destination row is checked as well), the whole batch in one call, while the
        # destination rows are read.
        uuids = list(map(_UUID, live))
        pending = context.table.start_fetch(uuids, context.comparer.row_columns)
        checked = self.rows.run(list(zip(live_texts, uuids, live_rows, strict=True)))
        values = [row.result for row in checked]
        fetched = pending.result()
        self._count_rows_met(fetched)

        # Each live record is quarantined (reported apart), missing (no destination row) or
        # compared; the report's lists are filled in the order of the records.
        compared = list(range(len(live)))
        if quarantined or None in fetched:
            compared = []
            for position, (text, row) in enumerate(zip(live_texts, fetched, strict=True)):
                if text in quarantined:
                    reason = quarantined[text]
                    report.add_quarantined(
                        quarantined_state(
                            context.comparer, text, reason, values[position], row, unchanged
                        )
                    )
                elif row is None:
                    report.missing.add(text)
                else:
                    compared.append(position)
        if compared:
            self._compare(compared, live_texts, live, values, fetched, report)

    def _live(
        self,
        texts: list[str],
        rows: list[dict[str, Any]],
        entries: Mapping[str, MapEntry],
        quarantined: Mapping[str, str],
        report: EntityVerification,
    ) -> tuple[list[str], list[MapEntry], list[dict[str, Any]]]:
        """The records that have a live record map entry: their key texts, entries and rows.
        The others are reported: missing, or quarantined and never migrated."""
        found = list(map(entries.get, texts))
        if None not in found and not any(map(_DELETED, found)):
            return texts, cast(list[MapEntry], found), rows  # the usual batch: all live
        live_texts: list[str] = []
        live: list[MapEntry] = []
        live_rows: list[dict[str, Any]] = []
        for text, entry, row in zip(texts, found, rows, strict=True):
            if entry is None or entry.deleted:
                if text in quarantined:
                    report.add_quarantined(QuarantinedState(text, NOT_MIGRATED, quarantined[text]))
                else:
                    report.missing.add(text)
                continue
            live_texts.append(text)
            live.append(entry)
            live_rows.append(row)
        return live_texts, live, live_rows

    def _compare(
        self,
        compared: list[int],
        texts: list[str],
        live: list[MapEntry],
        values: list[dict[str, Any] | RowError],
        fetched: list[tuple[Any, ...] | None],
        report: EntityVerification,
    ) -> None:
        """Counts, marks stale and compares the records at ``compared`` (each has a row)."""
        report.compared += len(compared)
        mapping_version = self.context.mapping_version
        versions = [live[i].mapping_version for i in compared]
        if versions.count(mapping_version) != len(versions):
            for position, version in zip(compared, versions, strict=True):
                if version != mapping_version:
                    report.stale.add(texts[position])
        if len(compared) < len(live):
            texts = [texts[i] for i in compared]
            values = [values[i] for i in compared]
            fetched = [fetched[i] for i in compared]
        differing = self.context.comparer.batch_differences(
            texts, values, cast(list[tuple[Any, ...]], fetched)
        )
        for position in sorted(differing):
            report.different_records += 1
            for difference in differing[position]:
                report.different.add(difference)

    def _count_rows_met(self, fetched: list[tuple[Any, ...] | None]) -> None:
        """Counts the destination rows the pass met (for the destination pass's
        ``every_row_met``)."""
        met = len(fetched) - fetched.count(None)
        self.rows_met += met
        if self.context.soft is None:
            self.rows_of_live_records += met
            return
        soft = len(self.context.columns)  # the soft-delete column comes last
        self.rows_of_live_records += sum(
            1 for row in fetched if row is not None and row[soft] is None
        )


_DELETED = attrgetter("deleted")
_UUID = attrgetter("uuid")


def _key_texts(rows: list[dict[str, Any]], key_columns: tuple[str, ...] | list[str]) -> list[str]:
    """Each row's key text (``ids.encode_key`` of its key values), a column at a time."""
    if len(key_columns) == 1:
        return value_key_texts(list(map(itemgetter(key_columns[0]), rows)))
    return key_texts(list(map(itemgetter(*key_columns), rows)))
