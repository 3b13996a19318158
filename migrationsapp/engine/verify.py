"""Checking a mapping against real data: ``verify`` (source vs destination) and ``preview``.

``EntityVerifier`` compares one entity's source and destination through its compiled
mapping, record by record, after converting each source row to the destination's types,
exactly as a run would write it. Two passes, each holding one batch at a time, so memory
stays constant in the size of the tables (only the capped report lists grow, to ``cap``):

1. **Source pass** (``verify_source_pass.py``). The source table is streamed from one
   snapshot through the row pipeline of a run, while the batch's destination rows are
   fetched by UUID; each source record is *quarantined* (reported apart with its
   destination state, ``verify_record_state.py``), *missing* or *compared* field by field
   (*different*, and *stale* when written under another mapping version).
2. **Destination pass** (``verify_destination_pass.py``). The destination table's keys are
   streamed from one snapshot and looked up in the record map, to find the *extra* rows:
   rows diffmig did not write, deletes that did not happen or are not applied yet. It is
   skipped when the source pass met every destination row through a live record.

What both passes share (the compiled entity, the source, the record-map port, the
destination table, the comparer) is set up once per entity by ``run``
(``verify_state.py``).

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
from dataclasses import dataclass

from .compile import CompiledEntity
from .connectors import Database
from .ports import DEFAULT_BATCH_SIZE
from .row_pipeline import References, RowPipeline
from .verify_compare import RowComparer
from .verify_destination_pass import DestinationPass
from .verify_parents import ParentUUIDs
from .verify_reads import DestinationTable
from .verify_reads import read_first_rows as read_first_rows
from .verify_report import DEFAULT_CAP, EntityVerification, VerifyPorts
from .verify_source_pass import SourcePass
from .verify_state import VerifyContext


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

    @property
    def entity(self) -> str:
        return self.compiled.spec.name

    def run(self) -> EntityVerification:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        started = time.monotonic()
        rows = RowPipeline(
            self.compiled, references=References.for_verify(ParentUUIDs(self.ports.live_uuids))
        )
        context = self._context()
        report = EntityVerification(self.entity, self.mapping_version, cap=self.cap)
        source_pass = SourcePass(context, rows)
        try:
            source_pass.run(report, self.batch_size)
        finally:
            context.table.close()  # start_fetch's thread
        destination_pass = DestinationPass(context)
        if not destination_pass.every_row_met(source_pass.rows_met):
            destination_pass.run(report, self.batch_size, source_pass.rows_of_live_records)
        report.seconds = time.monotonic() - started
        return report

    def _context(self) -> VerifyContext:
        """The destination table and how its rows are compared, with the rest both passes
        read."""
        spec = self.compiled.spec
        table = DestinationTable(self.destination, spec.destination_table, spec.destination_key)
        info = table.table
        columns = {name: info.columns[name] for name in self.compiled.destination_columns}
        # The soft-delete column is checked apart, unless a field also writes it.
        soft = (
            spec.soft_delete_column
            if spec.deletes == "soft"
            and spec.soft_delete_column
            and spec.soft_delete_column not in columns
            and info.column(spec.soft_delete_column) is not None
            else None
        )
        return VerifyContext(
            compiled=self.compiled,
            source=self.source,
            ports=self.ports,
            mapping_version=self.mapping_version,
            table=table,
            columns=columns,
            soft=soft,
            comparer=RowComparer(columns, soft),
        )
