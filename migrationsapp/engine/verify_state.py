"""What the passes of one entity's verify share, set up once by ``EntityVerifier.run``
(``verify.py``): the compiled entity, the source, the record-map port, the destination
table and how its rows are compared. No Django here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .compile import CompiledEntity
from .connectors import ColumnInfo, Database
from .verify_compare import RowComparer
from .verify_reads import DestinationTable
from .verify_report import VerifyPorts


@dataclass(frozen=True)
class VerifyContext:
    """One entity's verify: what its source and destination passes read and compare with."""

    compiled: CompiledEntity
    source: Database
    ports: VerifyPorts
    mapping_version: int
    table: DestinationTable
    # The destination columns the mapping writes, and the soft-delete column when it is
    # checked apart (read after them, as the comparer's last column), or None.
    columns: dict[str, ColumnInfo]
    soft: str | None
    comparer: RowComparer

    @property
    def entity(self) -> str:
        return self.compiled.spec.name
