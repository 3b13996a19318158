"""Checking a mapping against real data: ``verify`` (source vs destination) and ``preview``.

``EntityVerifier`` compares one entity's source and destination through its compiled
mapping, record by record, after converting each source row to the destination's types,
exactly as a run would write it. Two passes, each holding one batch at a time, so memory
stays constant in the size of the tables (only the capped report lists grow, to ``cap``):

1. **Source pass.** The source table is streamed from one snapshot. For each batch, the
   keys' texts are made a column at a time (``key_texts.py``), the record map entries of
   the keys and their open quarantine entries are looked up in the control database (one
   query each), the rows go through the row pipeline of a run (``row_pipeline.py``: one
   ``transform_batch`` call, the columnar path where the mapping has one, with its exact
   row-wise fallback; references translated into the parents' UUIDs through the record
   map, each parent key asked once (``verify_parents.py``), an unresolved one marked, never
   a failure) while the destination rows of the batch are fetched by UUID (one query, one
   index probe per UUID; on PostgreSQL on a thread of its own, so that the query's time in
   the server overlaps the pipeline's). Each source record then ends up as *quarantined*
   (open quarantine: reported apart, see below), *missing* (no live record map entry, or no
   destination row) or *compared* field by field, adding one *different* per field that
   does not match; a compared record written under another mapping version than the active
   one (an older one; or a newer one after a rollback) is also *stale*. Stale rows are
   compared all the same: only missing, extra and different are mismatches.

   A quarantined record is counted in ``quarantined`` and listed in ``quarantined_records``
   with its destination state, so that a quarantine never hides a tampered or deleted row:
   *not migrated* (no live record map entry: nothing was ever written), *missing* (migrated,
   but its destination row is gone), *equal* or *different* (with the fields) when the
   source still holds the content last migrated (its content hash and mapping version are
   the record map's: the row must be exactly what that content gives), *source changed*
   when the source changed since (the row holds the last migrated content, which verify
   cannot rebuild; the change is what failed). *missing* and *different* are mismatches.
2. **Destination pass.** The destination table's keys are streamed from one snapshot and,
   per batch, looked up by UUID in the record map. A row is *extra* when no record map
   entry of this entity has its UUID (diffmig did not write it), when its entry is deleted
   (a delete that did not happen; under ``deletes: soft`` a row whose soft-delete column is
   set is fine), or when its entry is live but its source row is gone (a delete not yet
   applied; under ``deletes: report`` such rows are kept on purpose and are not extra).
   Whether any source row is gone is known from two counts: the destination rows of live
   records the source pass met, and the destination rows of live entries this pass met
   (neither soft-deleted). A live record's row is a live entry's row, so equal counts mean
   every such row has its source row (when no two live entries share a UUID). Only when
   they differ does the pass run again, checking the source with one fetch-by-key per
   batch.

The destination pass is skipped when the source pass met every destination row (as many
rows met through live records as the table holds, no UUID held by two live entries): each
row then belongs to a live record whose source row exists, and none can be extra.

Nothing is held across batches but counters, the capped lists and the parents' UUIDs found
(a bounded number per parent entity): no set of every key or UUID, no temporary table. The
price is one record-map query per batch and pass.

A batch is compared by ``verify_compare.py``, a column at a time (values that are already the
same Python value on both sides settle the column at once); only a record with a field not
settled that way takes the record's own, type-aware way. Equality and the values shown are
``values.py``'s; the report is ``verify_report.py``'s; the destination reads (and
``read_first_rows``, which serves the mapping preview) are ``verify_reads.py``'s. No Django here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, cast

from .compile import CompiledEntity
from .connectors import ColumnInfo, Database
from .errors import RowError
from .ids import encode_key, value_text
from .key_texts import key_texts, value_key_texts
from .ports import DEFAULT_BATCH_SIZE
from .row_pipeline import References, RowPipeline
from .values import as_uuid
from .verify_compare import RowComparer
from .verify_parents import ParentUUIDs
from .verify_reads import DestinationTable
from .verify_reads import read_first_rows as read_first_rows
from .verify_report import (
    DEFAULT_CAP,
    NOT_MIGRATED,
    Q_DIFFERENT,
    Q_EQUAL,
    Q_MISSING,
    SOURCE_CHANGED,
    SOURCE_DELETED,
    EntityVerification,
    MapEntry,
    QuarantinedState,
    VerifyPorts,
)


@dataclass
class EntityVerifier:
    """Verifies one entity; see the module docstring for the two passes."""

    compiled: CompiledEntity
    source: Database
    destination: Database
    ports: VerifyPorts
    mapping_version: int
    batch_size: int = DEFAULT_BATCH_SIZE
    cap: int = DEFAULT_CAP
    # Set up by run().
    _rows: RowPipeline = field(init=False, repr=False)
    _table: DestinationTable = field(init=False, repr=False)
    _columns: dict[str, ColumnInfo] = field(init=False, repr=False)
    _soft: str | None = field(init=False, repr=False, default=None)
    _comparer: RowComparer = field(init=False, repr=False)
    # Destination rows (not soft-deleted) of live records the source pass found, and those
    # of live entries the destination pass found: equal counts mean no source row is gone.
    _rows_of_live_records: int = field(init=False, repr=False, default=0)
    _rows_met: int = field(init=False, repr=False, default=0)  # soft-deleted ones too
    _rows_of_live_entries: int = field(init=False, repr=False, default=0)

    @property
    def entity(self) -> str:
        return self.compiled.spec.name

    def run(self) -> EntityVerification:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        started = time.monotonic()
        spec = self.compiled.spec
        self._rows = RowPipeline(
            self.compiled, references=References.for_verify(ParentUUIDs(self.ports.live_uuids))
        )
        self._table = DestinationTable(
            self.destination, spec.destination_table, spec.destination_key
        )
        info = self._table.table
        self._columns = {name: info.columns[name] for name in self.compiled.destination_columns}
        # The soft-delete column is checked apart, unless a field also writes it.
        self._soft = (
            spec.soft_delete_column
            if spec.deletes == "soft"
            and spec.soft_delete_column
            and spec.soft_delete_column not in self._columns
            and info.column(spec.soft_delete_column) is not None
            else None
        )
        self._comparer = RowComparer(self._columns, self._soft)
        self._rows_of_live_records = self._rows_of_live_entries = self._rows_met = 0
        report = EntityVerification(self.entity, self.mapping_version, cap=self.cap)
        columns = list(dict.fromkeys([*spec.source_key, *self.compiled.source_columns]))
        try:
            for batch in self.source.stream_rows(
                spec.source_table, columns, batch_size=self.batch_size
            ):
                self._source_batch(batch, report)
        finally:
            self._table.close()  # start_fetch's thread
        if self._every_row_met():
            report.seconds = time.monotonic() - started
            return report
        extra_columns = [self._soft] if self._soft else []
        for batch in self._table.stream(extra_columns, self.batch_size):
            self._rows_of_live_entries += len(self._destination_batch(batch, report))
        if self._rows_of_live_entries != self._rows_of_live_records or not (
            self.ports.live_uuids_unique(self.entity)
        ):
            # Some live entry's destination row may have no source row behind it: find which.
            for batch in self._table.stream(extra_columns, self.batch_size):
                live = self._destination_batch(batch, None)
                if live:
                    self._check_source_gone(live, report)
        report.seconds = time.monotonic() - started
        return report

    # -- source pass -------------------------------------------------------------------------

    def _source_batch(self, rows: list[dict[str, Any]], report: EntityVerification) -> None:
        texts = _key_texts(rows, self.compiled.spec.source_key)
        quarantined = self.ports.quarantined(self.entity, texts)
        entries = self.ports.entries_by_key(self.entity, texts)
        unchanged = self._at_last_migrated(texts, rows, quarantined, entries)
        live_texts, live, live_rows = self._live(texts, rows, entries, quarantined, report)
        if not live:
            return
        # Every record with a live entry goes through the pipeline (quarantined ones too:
        # their destination row is checked as well), the whole batch in one call, while the
        # destination rows are read.
        uuids = list(map(_UUID, live))
        pending = self._table.start_fetch(uuids, self._comparer.row_columns)
        checked = self._rows.run(list(zip(live_texts, uuids, live_rows, strict=True)))
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
                        self._quarantined_state(text, reason, values[position], row, unchanged)
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
        versions = [live[i].mapping_version for i in compared]
        if versions.count(self.mapping_version) != len(versions):
            for position, version in zip(compared, versions, strict=True):
                if version != self.mapping_version:
                    report.stale.add(texts[position])
        if len(compared) < len(live):
            texts = [texts[i] for i in compared]
            values = [values[i] for i in compared]
            fetched = [fetched[i] for i in compared]
        differing = self._comparer.batch_differences(
            texts, values, cast(list[tuple[Any, ...]], fetched)
        )
        for position in sorted(differing):
            report.different_records += 1
            for difference in differing[position]:
                report.different.add(difference)

    def _count_rows_met(self, fetched: list[tuple[Any, ...] | None]) -> None:
        """Counts the destination rows the source pass met (for ``_every_row_met``)."""
        met = len(fetched) - fetched.count(None)
        self._rows_met += met
        if self._soft is None:
            self._rows_of_live_records += met
            return
        soft = len(self._columns)  # the soft-delete column comes last
        self._rows_of_live_records += sum(
            1 for row in fetched if row is not None and row[soft] is None
        )

    def _at_last_migrated(
        self,
        texts: list[str],
        rows: list[dict[str, Any]],
        quarantined: Mapping[str, str],
        entries: Mapping[str, MapEntry],
    ) -> set[str]:
        """The quarantined, migrated records whose source holds the content last migrated:
        its content hash and mapping version are those of the record map (one hash read of
        the source per batch, for these keys only)."""
        if not quarantined:
            return set()
        spec = self.compiled.spec
        wanted = []
        for text, row in zip(texts, rows, strict=True):
            entry = entries.get(text)
            if (
                text in quarantined
                and entry is not None
                and not entry.deleted
                and entry.content_hash
                and entry.mapping_version == self.mapping_version
            ):
                wanted.append((text, tuple(row[c] for c in spec.source_key)))
        if not wanted:
            return set()
        hashes = self.source.fetch_key_hashes(
            spec.source_table, spec.source_key, self.compiled.hashed_columns, [k for _, k in wanted]
        )
        by_text = {encode_key(list(key)): content_hash for key, content_hash in hashes.items()}
        return {text for text, _ in wanted if by_text.get(text) == entries[text].content_hash}

    def _quarantined_state(
        self,
        key_text: str,
        reason: str,
        values: dict[str, Any] | RowError,
        row: tuple[Any, ...] | None,
        unchanged: set[str],
    ) -> QuarantinedState:
        """What the destination row of a quarantined, migrated record holds."""
        if row is None:
            return QuarantinedState(key_text, Q_MISSING, reason)
        if key_text not in unchanged:
            return QuarantinedState(key_text, SOURCE_CHANGED, reason)
        read = dict(zip(self._comparer.row_columns, row, strict=True))
        differences = self._comparer.differences(key_text, values, read)
        if differences:
            return QuarantinedState(key_text, Q_DIFFERENT, reason, tuple(differences))
        return QuarantinedState(key_text, Q_EQUAL, reason)

    # -- destination pass --------------------------------------------------------------------

    def _every_row_met(self) -> bool:
        """Whether the source pass met every destination row, each through a live record
        whose source row exists: then no row can be extra and the pass has nothing to find.
        The rows met are distinct when no two live entries share a UUID."""
        return self._rows_met == self._table.count() and self.ports.live_uuids_unique(self.entity)

    def _soft_deleted(self, row: Mapping[str, Any]) -> bool:
        return self._soft is not None and row.get(self._soft) is not None

    def _destination_batch(
        self, rows: list[dict[str, Any]], report: EntityVerification | None
    ) -> list[tuple[uuid.UUID, MapEntry]]:
        """Reports the batch's extra rows (unless ``report`` is None) and returns the rows of
        live entries whose source row may be gone (not under ``deletes: report``)."""
        spec = self.compiled.spec
        by_uuid: dict[uuid.UUID, dict[str, Any]] = {}
        for row in rows:
            parsed = as_uuid(row[spec.destination_key])
            if parsed is None:
                # Not even a UUID: certainly not a row diffmig wrote.
                if report is not None:
                    report.extra.add(value_text(row[spec.destination_key]))
                continue
            by_uuid[parsed] = row
        entries = self.ports.entries_by_uuid(self.entity, list(by_uuid))
        live: list[tuple[uuid.UUID, MapEntry]] = []
        for record_uuid, row in by_uuid.items():
            entry = entries.get(record_uuid)
            soft_deleted = self._soft_deleted(row)
            if entry is None:
                if report is not None:
                    report.extra.add(str(record_uuid))
            elif entry.deleted:
                if not soft_deleted and report is not None:
                    report.extra.add(str(record_uuid))  # the delete did not happen
            elif spec.deletes != "report" and not soft_deleted:
                live.append((record_uuid, entry))
        return live

    def _check_source_gone(
        self, live: list[tuple[uuid.UUID, MapEntry]], report: EntityVerification
    ) -> None:
        """Live records whose source row is gone: deletes not applied yet, hence extra."""
        spec = self.compiled.spec
        found = self.source.fetch_rows(
            spec.source_table, spec.source_key, [tuple(e.key) for _, e in live], []
        )
        present = {encode_key(list(key)) for key in found}
        gone = [(u, e) for u, e in live if e.key_text not in present]
        if not gone:
            return
        quarantined = self.ports.quarantined(self.entity, [e.key_text for _, e in gone])
        for record_uuid, entry in gone:
            if entry.key_text in quarantined:
                # A delete the destination refused (a child still points at it): the row
                # stays until the delete succeeds.
                report.add_quarantined(
                    QuarantinedState(entry.key_text, SOURCE_DELETED, quarantined[entry.key_text])
                )
            else:
                report.extra.add(str(record_uuid))


_DELETED = attrgetter("deleted")
_UUID = attrgetter("uuid")


def _key_texts(rows: list[dict[str, Any]], key_columns: tuple[str, ...] | list[str]) -> list[str]:
    """Each row's key text (``ids.encode_key`` of its key values), a column at a time."""
    if len(key_columns) == 1:
        return value_key_texts(list(map(itemgetter(key_columns[0]), rows)))
    return key_texts(list(map(itemgetter(*key_columns), rows)))
