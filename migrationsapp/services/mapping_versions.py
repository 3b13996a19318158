"""Versions of a schema mapping definition: drafts, clones and activation.

A definition that is active, or has ever been active (``activated_at`` set), is frozen: the
record map and record events name its version, so its content must keep meaning what it
meant. An edit is a new version: ``clone_definition`` copies a definition and its rows into
a new inactive draft (next integer version of the entity), the draft is edited, and
``activate_definition`` makes it the one active definition of its entity.

No check-then-act: the database decides. Every write first locks the entity's definitions
(``select_for_update``), so activations, clones and draft edits of one entity run one after
the other; the unique constraints on ``(entity_type, version)`` and on the active row per
entity catch whatever escapes the lock (SQLite, which has no row locks, serializes writers
with ``BEGIN IMMEDIATE`` instead).

Version numbers are never reused: a version is the entity's highest version + 1, and the
admin never deletes a definition (see ``migrationsapp.admin.mappings``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from migrationsapp.engine.errors import DiffmigError, MappingError, MappingProblem, TerminalError
from migrationsapp.engine.mapping import (
    EntitySpec,
    check_against_tables,
    check_entity,
    content_fingerprint,
)
from migrationsapp.models import (
    FieldMapping,
    SchemaMappingDefinition,
    TransformationFunction,
    ValidationRule,
)
from migrationsapp.models.mapping import DEFINITION_SETTINGS
from migrationsapp.selectors.definitions import definition_to_entity
from migrationsapp.services.change_audit import log_activation
from migrationsapp.services.connectivity import refuse_missing_sqlite_file
from migrationsapp.services.databases import connection_spec, opened
from migrationsapp.services.users import username

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

# A concurrent writer may take the version we computed between our read and our insert
# (only possible for a brand-new entity, which has no row to lock); we then try again.
VERSION_ATTEMPTS = 3

# Columns of a definition that are its content (copied by a clone); the rest is
# bookkeeping of one version (id, version, is_active, activated_at, created_by, times).
CONTENT_FIELDS = ("entity_type", *DEFINITION_SETTINGS, "content_fingerprint", "description")
ROW_MODELS = (FieldMapping, ValidationRule, TransformationFunction)


class MappingVersionError(TerminalError):
    """A version operation is refused (frozen definition, already active, lost race)."""


@dataclass(frozen=True)
class Activation:
    """What an activation did: the definition now active and the one it replaced."""

    activated: SchemaMappingDefinition
    deactivated: SchemaMappingDefinition | None


def _lock_entity(entity_type: str) -> list[SchemaMappingDefinition]:
    """Lock every definition of an entity, in a fixed order so that lockers never deadlock."""
    return list(
        SchemaMappingDefinition.objects.select_for_update()
        .filter(entity_type=entity_type)
        .order_by("version")
    )


def _next_version(entity_type: str) -> int:
    # A fresh statement after the lock: under READ COMMITTED it sees versions committed by
    # whoever held the lock before us.
    highest = SchemaMappingDefinition.objects.filter(entity_type=entity_type).aggregate(
        highest=Max("version")
    )["highest"]
    return (highest or 0) + 1


def _insert_next_version(definition: SchemaMappingDefinition) -> SchemaMappingDefinition:
    """Insert an unsaved draft under the entity's next version number."""
    for _attempt in range(VERSION_ATTEMPTS):
        _lock_entity(definition.entity_type)
        definition.version = _next_version(definition.entity_type)
        try:
            # A savepoint: losing the race leaves the outer transaction usable for a retry.
            with transaction.atomic():
                definition.save(force_insert=True)
        except IntegrityError:
            taken = SchemaMappingDefinition.objects.filter(
                entity_type=definition.entity_type, version=definition.version
            ).exists()
            if not taken:  # another constraint refused the row: not a race, say so
                raise
            continue
        return definition
    raise MappingVersionError(
        f"entity {definition.entity_type!r}: another version was created at the same time",
        hint="Try again.",
    )


def lock_draft(*, definition_id: uuid.UUID) -> SchemaMappingDefinition:
    """Lock a definition for an edit of its content; refused once it is (or was) active.

    Call inside a transaction: the lock holds until it commits, so an activation of the same
    entity waits for the edit instead of activating half-edited content.
    """
    definition = SchemaMappingDefinition.objects.select_for_update().get(pk=definition_id)
    if not definition.is_draft:
        raise MappingVersionError(
            f"{definition} has been active: its content cannot change",
            hint="Clone it into a new draft version and edit the draft.",
        )
    return definition


@transaction.atomic
def create_draft_definition(
    *, definition: SchemaMappingDefinition, user: AbstractBaseUser | None
) -> SchemaMappingDefinition:
    """Store a new (unsaved) definition as an inactive draft under the next version."""
    definition.is_active = False
    definition.activated_at = None
    definition.created_by = username(user)
    return _insert_next_version(definition)


@transaction.atomic
def save_draft_definition(
    *, definition: SchemaMappingDefinition, user: AbstractBaseUser | None
) -> SchemaMappingDefinition:
    """Save the edited content of an existing draft; refused if it has been activated since."""
    stored = lock_draft(definition_id=definition.pk)
    # Only content changes here: version, activation and authorship stay as stored, and
    # the entity stays put (its version numbers belong to that entity).
    fields = [name for name in CONTENT_FIELDS if name not in {"entity_type", "content_fingerprint"}]
    for name in fields:
        setattr(stored, name, getattr(definition, name))
    # The edit (of these columns or of the rows) outdates the fingerprint copied by a clone;
    # activation computes it again from what is stored then.
    stored.content_fingerprint = ""
    stored.save(update_fields=[*fields, "content_fingerprint", "updated_at"])
    return stored


@transaction.atomic
def clone_definition(
    *, definition_id: uuid.UUID, user: AbstractBaseUser | None
) -> SchemaMappingDefinition:
    """Copy a definition and its rows into a new inactive draft (the next version)."""
    source = SchemaMappingDefinition.objects.get(pk=definition_id)
    clone = SchemaMappingDefinition(
        **{name: getattr(source, name) for name in CONTENT_FIELDS},
        is_active=False,
        activated_at=None,
        created_by=username(user),
    )
    _insert_next_version(clone)
    for model in ROW_MODELS:
        rows = list(model.objects.filter(definition_id=source.pk).order_by("pk"))
        for row in rows:
            row.pk = None
            row.definition_id = clone.pk
            row._state.adding = True
        model.objects.bulk_create(rows)
    return clone


@transaction.atomic
def switch_active_definition(
    *, definition_id: uuid.UUID, user: AbstractBaseUser | None, check_databases: bool = False
) -> Activation:
    """Make a definition the one active definition of its entity, in one transaction.

    The definition must pass the engine's structural checks (``MappingError`` lists every
    problem; nothing changes). Its content fingerprint is recomputed from its rows, so that
    an import of the same content later sees it as unchanged and an import of other content
    does not. The previously active one (if any) is deactivated; it keeps ``activated_at``
    and stays frozen. Activating an older version again is how an editor rolls back.
    ``user`` is who asked: the audit entries (``mapping.activated``, and
    ``mapping.deactivated`` for the replaced version) name them. With
    ``check_databases`` the tables and columns are checked against both databases too, as
    ``mappings import`` checks them, and a database that cannot be read refuses it.
    """
    entity_type = (
        SchemaMappingDefinition.objects.filter(pk=definition_id)
        .values_list("entity_type", flat=True)
        .get()
    )
    locked = {row.pk: row for row in _lock_entity(entity_type)}
    target = locked.get(definition_id)
    if target is None:  # deleted (or moved) between the two reads
        raise MappingVersionError(
            "the mapping definition no longer exists", hint="Reload the page."
        )
    if target.is_active:
        raise MappingVersionError(f"{target} is already the active definition of {entity_type!r}")
    previous = next((row for row in locked.values() if row.is_active), None)
    fingerprint = _checked_fingerprint(target, check_databases=check_databases)
    now = timezone.now()
    if previous is not None:
        # Deactivate first: the partial unique constraint allows one active row per entity.
        SchemaMappingDefinition.objects.filter(pk=previous.pk, is_active=True).update(
            is_active=False, updated_at=now
        )
    changed = SchemaMappingDefinition.objects.filter(pk=target.pk, is_active=False).update(
        is_active=True, activated_at=now, updated_at=now, content_fingerprint=fingerprint
    )
    if changed != 1:
        raise MappingVersionError(
            f"{target} changed while it was being activated", hint="Reload the page and retry."
        )
    target.refresh_from_db()
    if previous is not None:
        previous.refresh_from_db()
    log_activation(activated=target, deactivated=previous, actor=username(user))
    return Activation(activated=target, deactivated=previous)


def database_problems(
    entity: EntitySpec, definition: SchemaMappingDefinition
) -> list[MappingProblem]:
    """The importer's checks of an entity against its two databases (tables, columns, NOT
    NULL columns left empty); a database that cannot be read is a problem too."""
    tables = []
    for side, name, table in (
        ("source", definition.source_connection, entity.source_table),
        ("destination", definition.destination_connection, entity.destination_table),
    ):
        try:
            spec = connection_spec(name)
            refuse_missing_sqlite_file(spec)  # never create a SQLite file by checking it
            with opened(spec) as database:
                tables.append(database.table(table))
        except (DiffmigError, sa.exc.SQLAlchemyError) as exc:
            reason = (
                f"the {side} database {name!r} cannot be read, so the tables were not checked: "
                f"{exc}; fix the connection (Connections page) and try again"
            )
            return [MappingProblem(entity=entity.name, field=None, reason=reason)]
    return check_against_tables(entity, tables[0], tables[1])


def _checked_fingerprint(
    definition: SchemaMappingDefinition, *, check_databases: bool = False
) -> str:
    """The fingerprint of a definition that the engine accepts; else ``MappingError``."""
    entity = definition_to_entity(definition)  # refuses what cannot even be read
    # A parent must be active to be depended on: a run orders the active definitions.
    known = set(
        SchemaMappingDefinition.objects.filter(is_active=True).values_list("entity_type", flat=True)
    )
    problems = check_entity(entity, known_entities=sorted(known | {definition.entity_type}))
    if check_databases and not problems:
        problems = database_problems(entity, definition)
    if problems:
        raise MappingError(problems)
    return content_fingerprint(entity)


def activate_definition(
    *, definition_id: uuid.UUID, user: AbstractBaseUser | None, check_databases: bool = False
) -> SchemaMappingDefinition:
    """Make a definition the one active definition of its entity; returns it."""
    return switch_active_definition(
        definition_id=definition_id, user=user, check_databases=check_databases
    ).activated
