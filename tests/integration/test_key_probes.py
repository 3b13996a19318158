"""A batch's lookups in the control tables stay one index probe per key when the tables
have grown faster than their statistics.

During a baseline the record map gains hundreds of thousands of entries between two
ANALYZEs (or with autovacuum off, none at all). Asked ``entity_type = %s AND legacy_key_text
= ANY(%s)``, the planner then read every entry of the entity and filtered them, once per
batch: a baseline that grew quadratically. These tests make such stale statistics (the
table analyzed while it held another entity only, then filled) and check the plans of the
statements the runner and verify use, and that the lookups still answer right.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.utils import timezone

from migrationsapp.models import QuarantinedRecord, RecordMap
from migrationsapp.services.batch_quarantine import resolve_quarantine
from migrationsapp.services.batches import ControlRunPorts
from migrationsapp.services.key_probes import probe_ids, probe_keys, probe_select
from migrationsapp.services.verify import ControlVerifyPorts

pytestmark = [pytest.mark.django_db]

GROWN = 60_000  # entries of the entity added after the last ANALYZE
MAP = RecordMap._meta.db_table


@pytest.fixture
def stale_record_map():
    """A record map whose statistics know only ``office``; ``patient`` grew since."""
    if connection.vendor != "postgresql":
        pytest.skip("plans are PostgreSQL's")
    insert = (
        f"INSERT INTO {MAP} (entity_type, legacy_key, legacy_key_text, destination_uuid, "
        "content_hash, mapping_version, first_migrated_at, last_migrated_at) "
        "SELECT %s, to_jsonb(g), g::text, md5(%s || g)::uuid, md5(g::text), 1, now(), now() "
        "FROM generate_series(1, %s) AS g"
    )
    with connection.cursor() as cursor:
        cursor.execute(insert, ["office", "office", 2_000])
        cursor.execute(f"ANALYZE {MAP}")
        cursor.execute(insert, ["patient", "patient", GROWN])
    return [str(n) for n in range(30_001, 31_001)]


def _plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_lookup_probes_the_index_per_key_despite_stale_statistics(stale_record_map):
    sql = probe_select(
        MAP,
        "t.legacy_key_text, t.destination_uuid",
        scope_column="entity_type",
        key_column="legacy_key_text",
        key_type="text",
        where="AND deleted_at IS NULL",
        unique=True,
    )
    plan = _plan(sql, [stale_record_map, "patient"])
    assert "Nested Loop" in plan, plan
    assert "legacy_key_text = probe.probe_key" in plan, plan  # in the index condition
    assert "Hash" not in plan, plan


def test_a_lookup_by_uuid_probes_the_uuid_index_per_key_despite_stale_statistics(
    stale_record_map,
):
    """The entity's (entity_type, legacy_key_text) index looks as cheap to a planner that
    believes the entity has no entries: taken, it reads all 60,000 for each UUID."""
    uuids = list(
        RecordMap.objects.filter(
            entity_type="patient", legacy_key_text__in=stale_record_map
        ).values_list("destination_uuid", flat=True)
    )
    sql = probe_select(
        MAP,
        "t.legacy_key_text",
        scope_column="entity_type",
        key_column="destination_uuid",
        key_type="uuid",
    )
    plan = _plan(sql, [probe_keys(uuids, "uuid"), "patient"])
    assert "map_uuid_idx" in plan, plan
    assert "Index Cond: (destination_uuid = probe.probe_key)" in plan, plan
    assert "map_entity_key_uniq" not in plan, plan
    with connection.cursor() as cursor:
        cursor.execute(sql, [probe_keys(uuids, "uuid"), "patient"])
        assert sorted(row[0] for row in cursor.fetchall()) == sorted(stale_record_map)
        cursor.execute(sql, [probe_keys(uuids, "uuid"), "office"])
        assert cursor.fetchall() == []  # another entity's UUIDs are not this one's


def test_an_update_by_keys_probes_the_index_per_key(stale_record_map):
    picked = probe_ids(
        MAP, scope_column="entity_type", key_column="legacy_key_text", key_type="text"
    )
    plan = _plan(
        f"UPDATE {MAP} SET deleted_at = now() WHERE {picked}", [stale_record_map, "patient"]
    )
    assert "legacy_key_text = probe.probe_key" in plan, plan
    assert "Index Cond: (id = ANY" in plan, plan
    assert "Hash" not in plan, plan


def test_the_lookups_answer_right_on_the_grown_table(stale_record_map):
    ports = ControlRunPorts(
        control_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        session_id=uuid.uuid4(),
        analysis_id=uuid.uuid4(),
        entity="patient",
        lease_owner="test",
        mapping_version=1,
    )
    wanted = [*stale_record_map[:3], "no-such-key"]
    found = ports.lookup_uuids("patient", wanted, include_deleted=False)
    assert sorted(found) == sorted(stale_record_map[:3])
    assert (
        found["30001"]
        == RecordMap.objects.get(entity_type="patient", legacy_key_text="30001").destination_uuid
    )

    RecordMap.objects.filter(entity_type="patient", legacy_key_text="30002").update(
        deleted_at=timezone.now()
    )
    assert set(ports.lookup_uuids("patient", wanted, include_deleted=False)) == {"30001", "30003"}
    assert set(ports.lookup_uuids("patient", wanted, include_deleted=True)) == {
        "30001",
        "30002",
        "30003",
    }
    # Another entity's entry of the same key is not this one's.
    assert set(ports.lookup_uuids("office", ["1", "3000"], include_deleted=True)) == {"1"}

    verify = ControlVerifyPorts()
    entries = verify.entries_by_key("patient", wanted)
    assert set(entries) == {"30001", "30002", "30003"} and entries["30002"].deleted
    by_uuid = verify.entries_by_uuid("patient", [entries["30001"].uuid, uuid.uuid4()])
    assert [e.key_text for e in by_uuid.values()] == ["30001"]
    assert set(verify.live_uuids("patient", wanted)) == {"30001", "30003"}


def test_closing_quarantine_entries_touches_only_the_batch_keys(stale_record_map):
    for key in ("30001", "30002", "30003"):
        QuarantinedRecord.objects.create(
            entity_type="patient",
            legacy_key=[key],
            legacy_key_text=key,
            rule="required",
            reason="bad",
        )
    resolve_quarantine("patient", ["30001", "30003", "99999"], timezone.now())
    still_open = QuarantinedRecord.objects.filter(resolved_at__isnull=True)
    assert list(still_open.values_list("legacy_key_text", flat=True)) == ["30002"]
