"""Leases on units: which executor may write an entity (or a partition of it) now, by
compare-and-set.

A lease is ``lease_owner`` (a random token per unit of work) and ``lease_heartbeat`` on the
unit's row: ``MigrationControl`` for an entity run, ``MigrationCheckpoint`` for a partition
of a large entity's upserts (``upsert:<i>``; services.partitions). The functions take the
model (``model=``, the entity run's by default); the rules are the same for both.

A lease is taken only where nobody holds it (``lease_owner = ''``), renewed by a heartbeat
thread while the unit runs and by every checkpoint transaction
(``services.batches.ControlRunPorts.commit_batch``, which stops a copy that lost it), and
given back at the end of the unit. A lease whose heartbeat is older than
``DIFFMIG_LEASE_TIMEOUT`` belongs to a worker that died: only the watchdog takes it away
(``expire``, ``expire_partition``), counting the attempt on the entity run.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection
from django.db.models import Exists, F, Model, OuterRef, Q, QuerySet
from django.utils import timezone

from migrationsapp.models import MigrationCheckpoint, MigrationControl
from migrationsapp.models.choices import CheckpointState, EntityState
from migrationsapp.services.state import transition_entity

logger = logging.getLogger("diffmig.leases")


def new_owner() -> str:
    """A lease token: one per unit of work, never reused."""
    return uuid.uuid4().hex


def lease_horizon(now: dt.datetime | None = None) -> dt.datetime:
    """Heartbeats older than this are stale: their worker is gone."""
    return (now or timezone.now()) - dt.timedelta(seconds=settings.DIFFMIG_LEASE_TIMEOUT)


def _stale(query: QuerySet, now: dt.datetime | None) -> QuerySet:
    return query.exclude(lease_owner="").filter(
        Q(lease_heartbeat__lt=lease_horizon(now)) | Q(lease_heartbeat__isnull=True)
    )


def stale_leases(now: dt.datetime | None = None) -> QuerySet[MigrationControl]:
    """Running entity runs whose holder stopped renewing its lease."""
    return _stale(MigrationControl.objects.filter(state=EntityState.RUNNING), now)


def stale_partition_leases(now: dt.datetime | None = None) -> QuerySet[MigrationCheckpoint]:
    """Partitions whose holder stopped renewing its lease (of an entity run that may have
    failed meanwhile: its session ends only once no partition is held)."""
    return _stale(MigrationCheckpoint.objects.all(), now).select_related("migration_run")


def acquire(*, control_id: uuid.UUID, owner: str) -> bool:
    """Take the lease of an entity run that nobody holds: pending → running, or a running
    one between two units. False when another executor holds it (or it is finished)."""
    now = timezone.now()
    if transition_entity(
        control_id=control_id,
        to=EntityState.RUNNING,
        expected=EntityState.PENDING,
        lease_owner=owner,
        lease_heartbeat=now,
    ):
        return True
    return (
        MigrationControl.objects.filter(
            pk=control_id, state=EntityState.RUNNING, lease_owner=""
        ).update(lease_owner=owner, lease_heartbeat=now, updated_at=now)
        == 1
    )


def acquire_partition(*, checkpoint_id: uuid.UUID, owner: str) -> bool:
    """Take the lease of a partition that nobody holds (or that ``owner`` holds already), of
    an entity run that is running; False when another executor holds it, or it is done."""
    now = timezone.now()
    # The run's state through EXISTS, not a join: an UPDATE with a join is made
    # ``WHERE id IN (SELECT … JOIN …)``, whose subquery PostgreSQL does not evaluate again
    # when a concurrent UPDATE of the same row commits first. Two executors then both took
    # a free partition; on the row's own columns the second sees the first's owner.
    running = MigrationControl.objects.filter(
        run_id=OuterRef("migration_run_id"), state=EntityState.RUNNING
    )
    return (
        MigrationCheckpoint.objects.filter(
            Exists(running), pk=checkpoint_id, lease_owner__in=("", owner)
        )
        .exclude(state=CheckpointState.COMPLETED)
        .update(lease_owner=owner, lease_heartbeat=now, updated_at=now)
        == 1
    )


def renew(*, holder_id: uuid.UUID, owner: str, model: type[Model] = MigrationControl) -> bool:
    """Move the heartbeat on; False when the lease is no longer ``owner``'s.
    (``holder_id`` is the primary key of the ``model`` row that holds the lease: an entity
    run's control row, or a partition's checkpoint.)"""
    return (
        model.objects.filter(pk=holder_id, lease_owner=owner).update(lease_heartbeat=timezone.now())
        == 1
    )


def release(*, holder_id: uuid.UUID, owner: str, model: type[Model] = MigrationControl) -> bool:
    """Give the lease back (the unit keeps its state); False when it was not ``owner``'s."""
    return (
        model.objects.filter(pk=holder_id, lease_owner=owner).update(
            lease_owner="", lease_heartbeat=None, updated_at=timezone.now()
        )
        == 1
    )


def expire(*, control: MigrationControl) -> bool:
    """Take a stale lease away from its dead holder and count the attempt (the watchdog).

    Compare-and-set on the owner and the heartbeat as read: a holder that renewed meanwhile
    keeps its lease, and of two watchdogs only one wins.
    """
    return (
        MigrationControl.objects.filter(
            pk=control.pk,
            state=EntityState.RUNNING,
            lease_owner=control.lease_owner,
            lease_heartbeat=control.lease_heartbeat,
        ).update(
            lease_owner="",
            lease_heartbeat=None,
            attempts=F("attempts") + 1,
            updated_at=timezone.now(),
        )
        == 1
    )


def expire_partition(*, checkpoint: MigrationCheckpoint) -> bool:
    """``expire`` for a partition's lease; the attempt counts on its entity run."""
    taken = (
        MigrationCheckpoint.objects.filter(
            pk=checkpoint.pk,
            lease_owner=checkpoint.lease_owner,
            lease_heartbeat=checkpoint.lease_heartbeat,
        ).update(lease_owner="", lease_heartbeat=None, updated_at=timezone.now())
        == 1
    )
    if taken:
        MigrationControl.objects.filter(run_id=checkpoint.migration_run_id).update(
            attempts=F("attempts") + 1, updated_at=timezone.now()
        )
    return taken


def heartbeat_interval() -> float:
    return max(settings.DIFFMIG_LEASE_TIMEOUT / 4, 0.2)


@contextmanager
def heartbeat(
    *, holder_id: uuid.UUID, owner: str, model: type[Model] = MigrationControl
) -> Iterator[threading.Event]:
    """Renew the lease from a thread while the body runs (an analysis writes no checkpoint
    for minutes). A killed process stops renewing, which is how the watchdog knows.

    Yields an event that is set when the lease was lost; the next checkpoint stops the unit.
    """
    stop, lost = threading.Event(), threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(heartbeat_interval()):
                if not renew(holder_id=holder_id, owner=owner, model=model):
                    lost.set()
                    return
        except Exception:  # the control database hiccupped: the checkpoints still renew
            logger.exception("lease heartbeat of %s stopped", holder_id)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"diffmig-lease-{holder_id}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join()
