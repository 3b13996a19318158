"""A partition's lease goes to one executor, however close together two of them ask.

``leases.acquire_partition`` is one compare-and-set UPDATE. Two executors asking at once
(helper processes, workers) run it on two connections: the second waits on the row lock of
the first, and when the first commits it must see the row's new owner and take nothing.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from migrationsapp.models import MigrationCheckpoint
from migrationsapp.models.choices import EntityState
from migrationsapp.services import leases
from tests.factories import MigrationCheckpointFactory, MigrationControlFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_of_two_executors_asking_at_once_only_the_first_takes_the_partition():
    run = MigrationControlFactory(state=EntityState.RUNNING)
    partition = MigrationCheckpointFactory(migration_run=run, unit="upsert:0", lease_owner="")
    second: dict[str, bool] = {}

    def ask_second() -> None:
        try:
            second["took"] = leases.acquire_partition(checkpoint_id=partition.pk, owner="second")
        finally:
            connection.close()  # this thread's own connection

    with transaction.atomic():
        assert leases.acquire_partition(checkpoint_id=partition.pk, owner="first")
        asking = threading.Thread(target=ask_second)
        asking.start()
        # The second UPDATE now waits on the row the first holds (whether it got there
        # before the commit or not, the outcome must be the same).
        time.sleep(0.5)
    asking.join(timeout=30)

    assert second == {"took": False}
    assert MigrationCheckpoint.objects.get(pk=partition.pk).lease_owner == "first"


def test_a_partition_of_a_run_that_is_not_running_is_not_taken():
    run = MigrationControlFactory(state=EntityState.PAUSED)
    partition = MigrationCheckpointFactory(migration_run=run, unit="upsert:0", lease_owner="")

    assert not leases.acquire_partition(checkpoint_id=partition.pk, owner="first")

    run.state = EntityState.RUNNING
    run.save(update_fields=["state"])
    assert leases.acquire_partition(checkpoint_id=partition.pk, owner="first")
    assert leases.acquire_partition(checkpoint_id=partition.pk, owner="first")  # its own
    assert not leases.acquire_partition(checkpoint_id=partition.pk, owner="other")
