"""The change-set store: the source's keys and hashes, compared set-wise in the control database.

The source's ``(key_text, key_json, hash)`` rows go into a stage in the control database (COPY
on PostgreSQL, ``executemany`` on SQLite): a temporary table here (timestamp and hybrid
detection), a table kept per analysis between its slices in ``analysis_stage.py`` (hash
detection); one INSERT … SELECT per kind then
joins it with the record map and the open quarantine and writes the analysis's change set:
every record with an open quarantine entry is in it (``retry`` when unchanged since it
failed, else ``new`` or ``modified``), so the quarantine never hides a record.
Python never holds more than one batch, and key equality is the database's exact text
equality, whatever the source's collation says.

``read_change_rows`` reads the change set back, a batch at a time, for the runner.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.utils import timezone

from migrationsapp.engine.diff import AnalysisCounts
from migrationsapp.models import AnalysisChange, RecordMap

STAGE = "diffmig_source_keys"
# The stage's key is made unique once it is full (``index_stage``): one index build costs
# about three quarters of keeping the index up to date row by row. ``seq`` is a row's place
# in the stream that staged it: the change set's upserts follow it, so that a batch of
# changes holds neighbouring rows in the order the source returned them (an InnoDB table's
# primary key order: integer keys a dense range, read as one, engine.reads_keys), not the
# scattered order of the keys' texts ('1', '10', '100', '1000', '10000', '10001').
COLUMNS = "key_text text NOT NULL, key_json text NOT NULL, hash text NOT NULL, seq bigint NOT NULL"
CHANGES = AnalysisChange._meta.db_table

# The parts the change set's statements share (s: the stage, m: the record map, q: the open
# quarantine). Parameters: the kind takes (baseline, mapping_version), the join the entity,
# the condition (baseline, mapping_version).
_UPSERT_KIND = """CASE
    WHEN NOT %s AND q.id IS NOT NULL AND q.content_hash = s.hash AND q.mapping_version = %s
         THEN 'retry'
    WHEN m.id IS NULL THEN 'new'
    ELSE 'modified'
END"""
_OPEN_QUARANTINE = """LEFT JOIN migration_quarantine q
       ON q.entity_type = %s AND q.legacy_key_text = s.key_text AND q.resolved_at IS NULL"""
_UPSERT_WANTED = """(%s OR m.id IS NULL OR m.deleted_at IS NOT NULL
    OR m.content_hash <> s.hash OR m.mapping_version <> %s OR q.id IS NOT NULL)"""


class ControlChangeSetStore:
    """A ``ChangeSetStore`` on the control database; use inside ``transaction.atomic()``.

    Its stage is the temporary table ``STAGE``; ``analysis_stage.SlicedStageStore`` keeps one
    of its own per analysis instead (``stage``, ``stage_index``: quoted names; ``staged``:
    the rows it holds already)."""

    def __init__(
        self,
        *,
        analysis_id: uuid.UUID,
        entity: str,
        resolve_gone: bool = False,
        stage: str = STAGE,
        stage_index: str = f"{STAGE}_key",
        staged: int = 0,
    ) -> None:
        self.analysis_id = analysis_id
        self.entity = entity
        # In a run (not a dry one), quarantined records that left the source are resolved:
        # there is nothing left to retry.
        self.resolve_gone = resolve_gone
        self.resolved_gone = 0
        self.vendor = connection.vendor
        self.stage = stage
        self.stage_index = stage_index
        # The rows staged so far: the source's count, without a scan of the stage.
        self.staged = staged
        self._indexed = False
        self.create_stage()

    def create_stage(self) -> None:
        """A new, empty temporary stage (PostgreSQL drops it at commit)."""
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")
            if self.vendor == "postgresql":
                cursor.execute(f"CREATE TEMPORARY TABLE {STAGE} ({COLUMNS}) ON COMMIT DROP")
            else:
                cursor.execute(f"CREATE TEMPORARY TABLE {STAGE} ({COLUMNS})")

    def drop_stage(self) -> None:
        """Once classified (PostgreSQL's temporary stage goes at commit by itself)."""
        if self.vendor != "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {STAGE}")

    def add_source(self, rows: list[tuple[str, str, str]]) -> None:
        if not rows:
            return
        first = self.staged  # the stream position of the first row
        self.staged += len(rows)
        stage = self.stage
        columns = "key_text, key_json, hash, seq"
        with connection.cursor() as cursor:
            if self.vendor != "postgresql":
                cursor.executemany(
                    f"INSERT INTO {stage} ({columns}) VALUES (%s, %s, %s, %s)",
                    [(*row, seq) for seq, row in enumerate(rows, first)],
                )
                return
            with cursor.cursor.copy(f"COPY {stage} ({columns}) FROM STDIN") as copy:
                block = copy_text(rows, first)
                if block is None:
                    for seq, row in enumerate(rows, first):
                        copy.write_row((*row, seq))
                else:
                    copy.write(block)

    def index_stage(self) -> None:
        """The stage's unique key index, once every source row is staged. A key on two rows
        fails it with an IntegrityError that names the key, as a primary key would have."""
        if self._indexed:
            return
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE UNIQUE INDEX {self.stage_index} ON {self.stage} (key_text)")
        self._indexed = True

    def classify(
        self, *, baseline: bool, mapping_version: int, present_keys: str | None = STAGE
    ) -> AnalysisCounts:
        """Write and count the change set.

        ``present_keys`` names the staged table holding every key the source has (``STAGE``,
        the default, stands for this store's stage): the records of the map missing from it
        are deletes (None: no deletes, for timestamp detection, which reads only part of the
        source).
        """
        if present_keys == STAGE:
            present_keys = self.stage
        self.index_stage()
        analysis = self.analysis_id.hex if self.vendor == "sqlite" else self.analysis_id
        record_map = RecordMap._meta.db_table
        stage = self.stage
        with connection.cursor() as cursor:
            if self.vendor == "postgresql" and present_keys == stage:
                self._write_changes_in_one_pass(cursor, analysis, baseline, mapping_version)
            else:
                self._write_upserts(cursor, analysis, baseline, mapping_version)
                if present_keys is not None:
                    self._write_deletes(cursor, analysis, present_keys)
            if self.resolve_gone:
                cursor.execute(
                    f"""
                    UPDATE migration_quarantine SET resolved_at = %s
                    WHERE entity_type = %s AND resolved_at IS NULL
                      AND NOT EXISTS (SELECT 1 FROM {stage} s
                                      WHERE s.key_text = migration_quarantine.legacy_key_text)
                      AND NOT EXISTS (SELECT 1 FROM {record_map} m
                                      WHERE m.entity_type = migration_quarantine.entity_type
                                        AND m.legacy_key_text = migration_quarantine.legacy_key_text
                                        AND m.deleted_at IS NULL)
                    """,
                    [timezone.now(), self.entity],
                )
                self.resolved_gone = cursor.rowcount
            source_count = self.staged
            cursor.execute(
                f"SELECT kind, count(*) FROM {CHANGES} WHERE analysis_id = %s GROUP BY kind",
                [analysis],
            )
            by_kind = dict(cursor.fetchall())
            cursor.execute(
                f"SELECT count(*) FROM {record_map} WHERE entity_type = %s AND deleted_at IS NULL",
                [self.entity],
            )
            mapped = cursor.fetchone()[0]
        self.drop_stage()
        counts = AnalysisCounts(
            new=by_kind.get("new", 0),
            modified=by_kind.get("modified", 0),
            deleted=by_kind.get("deleted", 0),
            retry=by_kind.get("retry", 0),
            source_count=source_count,
            mapped_count=mapped,
        )
        counts.unchanged = source_count - counts.new - counts.modified - counts.retry
        return counts

    def _classify_params(self, analysis: Any, baseline: bool, mapping_version: int) -> list:
        """The bound values of the upsert classification (``_UPSERT_WANTED`` and the
        quarantine join), in the order its statements name them."""
        return [
            analysis,
            baseline,
            mapping_version,
            self.entity,
            self.entity,
            baseline,
            mapping_version,
        ]

    def _write_upserts(self, cursor, analysis: Any, baseline: bool, mapping_version: int) -> None:
        """new / modified / retry: source keys that are not in the map as they are now, and
        every key with an open quarantine entry, whatever its hash: a record whose source went
        back to its last migrated content still failed last time (its destination row may be
        stale or missing) and must be tried again, never counted unchanged."""
        json_cast = "::jsonb" if self.vendor == "postgresql" else ""
        cursor.execute(
            f"""
            INSERT INTO {CHANGES} (analysis_id, kind, legacy_key, legacy_key_text, content_hash)
            SELECT %s, {_UPSERT_KIND}, s.key_json{json_cast}, s.key_text, s.hash
            FROM {self.stage} s
            LEFT JOIN {RecordMap._meta.db_table} m
                   ON m.entity_type = %s AND m.legacy_key_text = s.key_text
            {_OPEN_QUARANTINE}
            WHERE {_UPSERT_WANTED}
            ORDER BY s.seq
            """,
            self._classify_params(analysis, baseline, mapping_version),
        )

    def _write_deletes(self, cursor, analysis: Any, present_keys: str) -> None:
        """deleted: records in the map (not already deleted) that the source no longer has."""
        cursor.execute(
            f"""
            INSERT INTO {CHANGES} (analysis_id, kind, legacy_key, legacy_key_text, content_hash)
            SELECT %s, 'deleted', m.legacy_key, m.legacy_key_text, m.content_hash
            FROM {RecordMap._meta.db_table} m
            WHERE m.entity_type = %s AND m.deleted_at IS NULL
              AND NOT EXISTS (
                  SELECT 1 FROM {present_keys} s WHERE s.key_text = m.legacy_key_text
              )
            ORDER BY m.legacy_key_text
            """,
            [analysis, self.entity],
        )

    def _write_changes_in_one_pass(
        self, cursor, analysis: Any, baseline: bool, mapping_version: int
    ) -> None:
        """``_write_upserts`` then ``_write_deletes`` as one statement: the stage and the
        entity's record map are read once, by one full join (PostgreSQL; hash detection, whose
        stage holds every key of the source). The same rows, kinds and id order: the upserts
        in stream order first, then the deletes by key."""
        cursor.execute(
            f"""
            INSERT INTO {CHANGES} (analysis_id, kind, legacy_key, legacy_key_text, content_hash)
            SELECT %s,
                   CASE WHEN s.key_text IS NULL THEN 'deleted' ELSE {_UPSERT_KIND} END,
                   CASE WHEN s.key_text IS NULL THEN m.legacy_key ELSE s.key_json::jsonb END,
                   COALESCE(s.key_text, m.legacy_key_text),
                   COALESCE(s.hash, m.content_hash)
            FROM {self.stage} s
            FULL JOIN (
                SELECT id, legacy_key, legacy_key_text, content_hash, mapping_version, deleted_at
                FROM {RecordMap._meta.db_table} WHERE entity_type = %s
            ) m ON m.legacy_key_text = s.key_text
            {_OPEN_QUARANTINE}
            WHERE CASE WHEN s.key_text IS NULL THEN m.deleted_at IS NULL
                       ELSE {_UPSERT_WANTED} END
            ORDER BY s.key_text IS NULL, s.seq, m.legacy_key_text
            """,
            self._classify_params(analysis, baseline, mapping_version),
        )


def copy_text(rows: Sequence[tuple[str, str, str]], first: int = 0) -> str | None:
    """``rows`` in COPY's text format as one block, each with its stream position (``seq``,
    from ``first``), or None when a value holds a character that format escapes (tab,
    newline, carriage return, backslash), for ``write_row``.

    Integer keys, ASCII text keys and hex hashes hold none: a batch is one string built by
    one f-string a row, not a ``write_row`` call a row.
    """
    block = "".join(
        [
            f"{text}\t{typed}\t{content_hash}\t{seq}\n"
            for seq, (text, typed, content_hash) in enumerate(rows, first)
        ]
    )
    plain = (
        block.count("\t") == 3 * len(rows)
        and block.count("\n") == len(rows)
        and "\r" not in block
        and "\\" not in block
    )
    return block if plain else None


ChangeRow = tuple[int, str, list[Any], str, str]  # id, kind, key, key text, content hash


def read_change_rows(
    *,
    analysis_id: uuid.UUID,
    kinds: Sequence[str],
    after_id: int,
    limit: int,
    lo: int | None = None,
    hi: int | None = None,
) -> list[ChangeRow]:
    """The first ``limit`` changes of ``kinds`` with an id above ``after_id``, by id.

    ``lo`` and ``hi`` (both included) narrow the ids to a partition's range.
    """
    if connection.vendor != "postgresql":
        query = AnalysisChange.objects.filter(
            analysis_id=analysis_id, id__gt=after_id, kind__in=kinds
        )
        if lo is not None:
            query = query.filter(id__gte=lo)
        if hi is not None:
            query = query.filter(id__lte=hi)
        rows = query.order_by("id").values_list(
            "id", "kind", "legacy_key", "legacy_key_text", "content_hash"
        )[:limit]
        return [(i, k, list(key), t, h) for i, k, key, t, h in rows]
    # One ordered range of the (analysis, kind, id) index per kind, merged: each batch reads
    # about `limit` index entries. A single `kind IN (…)` scan is not in id order, so it
    # read and sorted every remaining change of the entity for every batch (quadratic).
    # A plain cursor also skips the ORM's per-row work.
    bounds, extra = "", []
    if lo is not None:
        bounds += " AND id >= %s"
        extra.append(lo)
    if hi is not None:
        bounds += " AND id <= %s"
        extra.append(hi)
    part = (
        "(SELECT id, kind, legacy_key, legacy_key_text, content_hash "
        f"FROM {AnalysisChange._meta.db_table} "
        f"WHERE analysis_id = %s AND kind = %s AND id > %s{bounds} ORDER BY id LIMIT %s)"
    )
    params: list[Any] = []
    for kind in kinds:
        params += [analysis_id, str(kind), after_id, *extra, limit]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT * FROM ({' UNION ALL '.join(part for _ in kinds)}) AS c ORDER BY id LIMIT %s",
            [*params, limit],
        )
        rows = cursor.fetchall()
    # Django has psycopg load jsonb as text (its JSONField decodes it): decode it the same way,
    # the batch's keys in one call (a call a key cost about as much as the rest of the read).
    texts = [key for _, _, key, _, _ in rows]
    if all(isinstance(key, str) for key in texts):
        keys = json.loads(f"[{','.join(texts)}]")
    else:
        keys = [json.loads(key) if isinstance(key, str) else list(key) for key in texts]
    return [(i, k, key, t, h) for (i, k, _, t, h), key in zip(rows, keys, strict=True)]
