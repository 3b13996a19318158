"""The row pipeline (engine/row_pipeline.py) on in-memory ports (tests/unit/fakes.py).

A run, verify and the mapping preview put a batch through the same pipeline, each with its
own options; these tests hold the same rows against each and assert what every row becomes:
its values, or its error with the rule, field and message a run quarantines it with.
"""

from __future__ import annotations

import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from migrationsapp.engine.adopt import Adoption
from migrationsapp.engine.compile import CompiledEntity, compile_entity
from migrationsapp.engine.errors import RowError
from migrationsapp.engine.ids import destination_uuid
from migrationsapp.engine.mapping.spec import EntitySpec, FieldSpec
from migrationsapp.engine.ports import UPSERT
from migrationsapp.engine.row_pipeline import (
    PipelineRow,
    References,
    RememberedParents,
    RowPipeline,
)
from migrationsapp.engine.stages import StageSeconds
from migrationsapp.engine.validation import RuleSpec, compile_rules
from migrationsapp.engine.values import UnresolvedReference, describe_reference
from tests.unit.fakes import MemoryControl, MemorySource, MemoryTable
from tests.unit.test_runner import (
    EMPLOYEE,
    EMPLOYEE_SPEC,
    EMPLOYEES,
    OFFICE,
    OFFICE_SPEC,
    OFFICES,
    TODAY,
    column,
    runner,
    table,
)

DOCTOR_SPEC = EntitySpec(
    name="doctor",
    source_table="doctors",
    source_key=("id",),
    destination_table="doctor",
    depends_on=("office",),
    fields=(
        FieldSpec(destination="office_id", source="office_id", reference="office"),
        FieldSpec(destination="name", source="name", required=True, transform="trim"),
        FieldSpec(destination="email", source="email", transform="email"),
    ),
    validation=(
        RuleSpec(field="email", rule="format", params={"pattern": "email"}),
        RuleSpec(field="email", rule="unique"),
    ),
)
DOCTORS = table(
    "doctors",
    column("id", "integer"),
    column("office_id", "integer"),
    column("name"),
    column("email"),
)
DOCTOR = table(
    "doctor",
    column("id", "uuid", nullable=False),
    column("office_id", "uuid"),
    column("name", nullable=False),
    column("email"),
)

# One row per way to fail, and two that pass: (id, office, name, email).
DOCTOR_ROWS = [
    (10, 1, "Ann", "ann@x.org"),  # passes
    (11, 9, "Bob", "bob@x.org"),  # office 9 was never migrated
    (12, 1, "Cy", "ANN@x.org"),  # Ann's address, earlier in the batch
    (13, 1, "Di", "taken@x.org"),  # held by another row of the destination
    (14, 1, "Ed", "not-an-email"),  # breaks the format rule
    (15, 1, "   ", "fay@x.org"),  # its transform fails (a required field is empty)
    (16, 9, "Gus", "nope"),  # breaks the rule and misses its parent: the rule speaks first
    (17, 1, "Hal", "own@x.org"),  # migrated before: its own row holds its address
]
EXPECTED_ERRORS = {
    "11": ("reference", "office_id", "missing parent: office '9' has not been migrated"),
    "12": ("unique", "email", "unique: duplicate value 'ann@x.org' (also in record 10)"),
    "13": (
        "unique",
        "email",
        "unique: 'taken@x.org' is already used by another destination record",
    ),
    "14": ("format", "email", "format: 'not-an-email' is not a valid email"),
    "15": ("required", "name", "required: source column 'name' is empty"),
    "16": ("format", "email", "format: 'nope' is not a valid email"),
}


def compiled_of(spec: EntitySpec, source_table, destination_table) -> CompiledEntity:
    return compile_entity(spec, source_table, destination_table, timezone=ZoneInfo("UTC"))


def rules_of(spec: EntitySpec):
    return compile_rules(spec.name, list(spec.validation), [f.destination for f in spec.fields])


class Clinic:
    """The doctors' source, the office map, a destination holding two rows already."""

    def __init__(self) -> None:
        self.source = MemorySource(
            {
                "doctors": [
                    {"id": i, "office_id": o, "name": n, "email": e} for i, o, n, e in DOCTOR_ROWS
                ]
            }
        )
        self.control = MemoryControl(entity="doctor")
        for key, *_ in DOCTOR_ROWS:
            self.control.add_change("modified" if key == 17 else "new", key)
        self.office = uuid.uuid4()
        self.control.migrated("office", "1", self.office)
        self.own = uuid.uuid4()
        self.control.migrated("doctor", "17", self.own)
        self.writer = MemoryTable("doctor")
        other = uuid.uuid4()  # no record of this entity
        self.writer.rows[other] = {"id": other, "name": "Other", "email": "taken@x.org"}
        self.writer.rows[self.own] = {"id": self.own, "name": "Hal", "email": "own@x.org"}
        self.compiled = compiled_of(DOCTOR_SPEC, DOCTORS, DOCTOR)

    def rows(self) -> list[tuple[str, uuid.UUID, dict[str, Any]]]:
        """The batch as a run or a preview hands it over: key text, UUID, source values."""
        known = self.control.lookup_uuids(
            "doctor", [str(k) for k, *_ in DOCTOR_ROWS], include_deleted=True
        )
        return [
            (
                str(row["id"]),
                known.get(str(row["id"])) or destination_uuid("doctor", str(row["id"])),
                {c: row.get(c) for c in self.compiled.source_columns},
            )
            for row in self.source.tables["doctors"]
        ]

    def preview(self, *, migrated=None) -> list[PipelineRow]:
        """The mapping preview's options (services/preview.py), on these ports."""
        references = References.for_preview(
            "doctor",
            self.control.live_uuids,
            migrated or (lambda entity: entity in self.control.record_map),
            lambda ref, parent_uuid: describe_reference(ref.entity, ref.key_text, parent_uuid),
        )
        pipeline = RowPipeline(
            self.compiled, rules_of(DOCTOR_SPEC), TODAY, references=references, owners=self.writer
        )
        return pipeline.run(self.rows())


def errors_of(rows: list[PipelineRow]) -> dict[str, tuple[str, str | None, str]]:
    return {
        row.key_text: (row.error.rule, row.error.field, row.error.reason)
        for row in rows
        if row.error is not None
    }


def test_the_run_and_the_preview_refuse_the_same_rows_with_the_same_errors():
    clinic = Clinic()

    previewed = clinic.preview()  # before the run writes anything
    runner(
        DOCTOR_SPEC,
        DOCTORS,
        DOCTOR,
        source=clinic.source,
        writer=clinic.writer,
        control=clinic.control,
    ).run(phase=UPSERT, after_id=0)

    assert errors_of(previewed) == EXPECTED_ERRORS
    quarantined = {
        key: (error.rule, error.field, error.reason)
        for key, error in clinic.control.quarantine.items()
    }
    assert quarantined == EXPECTED_ERRORS
    assert clinic.control.actions() == {
        "10": "created",
        "17": "updated",
        **dict.fromkeys(EXPECTED_ERRORS, "failed"),
    }
    # What the preview shows of a passing row is what the run wrote, the reference apart.
    by_key = {row.key_text: row for row in previewed}
    ann = clinic.writer.rows[destination_uuid("doctor", "10")]
    assert by_key["10"].values == {
        "office_id": describe_reference("office", "1", clinic.office),
        "name": "Ann",
        "email": "ann@x.org",
    }
    assert ann == {
        "id": destination_uuid("doctor", "10"),
        "office_id": clinic.office,
        "name": "Ann",
        "email": "ann@x.org",
    }


def test_rows_come_out_in_the_batchs_order_with_values_or_an_error():
    clinic = Clinic()

    previewed = clinic.preview()

    assert [row.key_text for row in previewed] == [str(k) for k, *_ in DOCTOR_ROWS]
    by_key = {row.key_text: row for row in previewed}
    assert by_key["15"].values == {}  # the transform failed: nothing to show
    assert by_key["15"].result is by_key["15"].error
    assert by_key["10"].result is by_key["10"].values
    # A row failing a rule still shows its values, its reference resolved.
    assert by_key["14"].values["office_id"] == describe_reference("office", "1", clinic.office)
    assert by_key["16"].values["office_id"] == "→ office 9 (not migrated yet)"
    assert by_key["17"].uuid == clinic.own


def test_a_checked_batch_keeps_its_values_as_columns_with_the_failing_rows_by_index():
    clinic = Clinic()
    pipeline = RowPipeline(
        clinic.compiled,
        rules_of(DOCTOR_SPEC),
        TODAY,
        references=References.for_run(clinic.control.live_uuids, lambda keys: ()),
        owners=clinic.writer,
    )

    checked = pipeline.check(clinic.rows())

    keys = [str(k) for k, *_ in DOCTOR_ROWS]
    assert list(checked.keys) == keys
    assert {keys[i]: e.rule for i, e in checked.errors.items()} == {
        key: rule for key, (rule, _, _) in EXPECTED_ERRORS.items()
    }
    assert [keys[i] for i in checked.passing()] == ["10", "17"]
    assert checked.values.names == ["office_id", "name", "email"]
    # A reference column holds the parents' UUIDs; a row whose transform failed, NULLs.
    at_10, at_15 = keys.index("10"), keys.index("15")
    assert checked.values.row(at_10) == {
        "office_id": clinic.office,
        "name": "Ann",
        "email": "ann@x.org",
    }
    assert checked.values.row(at_15) == dict.fromkeys(["office_id", "name", "email"])
    assert checked.row(at_15).values == {} and checked.row(at_15).error is not None
    # The same rows as ``run`` gives them one at a time.
    assert [row.values for row in checked.rows()] == [
        row.values for row in pipeline.run(clinic.rows())
    ]


def test_the_preview_holds_no_missing_parent_against_a_row_before_its_entity_is_migrated():
    clinic = Clinic()

    previewed = clinic.preview(migrated=lambda entity: False)

    expected = {k: e for k, e in EXPECTED_ERRORS.items() if e[0] != "reference"}
    assert errors_of(previewed) == expected
    assert {row.key_text: row.values.get("office_id") for row in previewed}["11"] == (
        "→ office 9 (not migrated yet)"
    )


def test_verify_marks_an_unresolved_reference_and_fails_no_row_on_it():
    clinic = Clinic()
    pipeline = RowPipeline(
        clinic.compiled, references=References.for_verify(clinic.control.live_uuids)
    )

    checked = {row.key_text: row for row in pipeline.run(clinic.rows())}

    assert checked["11"].error is None
    assert checked["11"].values["office_id"] == UnresolvedReference("office", "9")
    assert checked["10"].values["office_id"] == clinic.office
    # No rules in verify: only the transform can fail a row.
    assert errors_of(list(checked.values())) == {"15": EXPECTED_ERRORS["15"]}


def test_a_run_holds_a_self_reference_coming_later_and_fails_one_that_never_comes():
    control = MemoryControl(entity="employee")
    for key in (1, 2, 3):
        control.add_change("new", key)  # 4 is in no change set, 5 was migrated before
    boss = uuid.uuid4()
    control.migrated("employee", "5", boss)
    compiled = compiled_of(EMPLOYEE_SPEC, EMPLOYEES, EMPLOYEE)
    pipeline = RowPipeline(
        compiled,
        references=References.for_run(
            lambda entity, keys: control.lookup_uuids(entity, keys, include_deleted=False),
            control.in_change_set,
        ),
    )
    rows = [(1, 3), (2, 5), (3, 4)]  # (id, manager)

    checked = pipeline.run(
        [
            (str(i), destination_uuid("employee", str(i)), {"id": i, "name": "E", "manager": m})
            for i, m in rows
        ]
    )

    held, resolved, orphan = checked
    assert (held.error, held.values["manager_id"], held.links) == (None, None, {"manager_id": "3"})
    assert (resolved.error, resolved.values["manager_id"], resolved.links) == (None, boss, None)
    assert orphan.error is not None
    assert str(orphan.error) == (
        "field 'manager_id': missing parent: employee '4' has not been migrated"
    )
    assert (orphan.error.rule, orphan.error.value) == ("reference", "4")


def offices_pipeline(writer: MemoryTable, adopt=None) -> RowPipeline:
    return RowPipeline(
        compiled_of(OFFICE_SPEC, OFFICES, OFFICE),
        rules_of(OFFICE_SPEC),
        TODAY,
        owners=writer,
        adopt=adopt,
    )


def office_rows(*rows: tuple[int, str, str]) -> list[tuple[str, uuid.UUID, dict[str, Any]]]:
    return [
        (str(i), destination_uuid("office", str(i)), {"id": i, "name": n, "email": e})
        for i, n, e in rows
    ]


def test_an_adopted_row_is_checked_for_uniqueness_under_the_uuid_it_adopts():
    writer = MemoryTable("office")
    existing = uuid.uuid4()
    writer.rows[existing] = {"id": existing, "name": "old", "email": "n@x.org"}
    rows = office_rows((1, "North", "n@x.org"), (2, "South", "s@x.org"))
    seen: list[list[str]] = []

    def adopt(candidates) -> Adoption:
        seen.append([key for key, _, _ in candidates])
        return Adoption(uuids={"1": existing}, notes={"1": "adopted"})

    without = offices_pipeline(writer).run(rows)
    adopted = offices_pipeline(writer, adopt).run(rows)

    assert errors_of(without) == {
        "1": ("unique", "email", "unique: 'n@x.org' is already used by another destination record")
    }
    assert errors_of(adopted) == {}
    assert (adopted[0].uuid, adopted[0].note) == (existing, "adopted")
    assert (adopted[1].uuid, adopted[1].note) == (destination_uuid("office", "2"), "")
    assert seen == [["1", "2"]]  # the passing rows, in order


def test_an_adoption_refused_fails_the_row_before_its_unique_check():
    writer = MemoryTable("office")
    refusal = Adoption()
    refusal.errors["1"] = RowError("match_on: ambiguous", field="email", rule="match_on")
    rows = office_rows((1, "North", "n@x.org"), (2, "South", "n@x.org"))

    checked = offices_pipeline(writer, lambda candidates: refusal).run(rows)

    # Record 2 repeats record 1's value, but record 1 failed first: 2 keeps it.
    assert errors_of(checked) == {"1": ("match_on", "email", "match_on: ambiguous")}


def test_the_pipeline_counts_only_its_own_stages():
    writer = MemoryTable("office")
    stages = StageSeconds()

    offices_pipeline(writer).run(office_rows((1, "North", "n@x.org")), stages=stages)

    # Transform and validate are its; reading, writing and the control commit are not.
    assert (stages.read, stages.write, stages.control) == (0.0, 0.0, 0.0)


def test_a_pipeline_without_what_its_mapping_needs_is_refused():
    with pytest.raises(ValueError, match="unique"):
        RowPipeline(compiled_of(OFFICE_SPEC, OFFICES, OFFICE), rules_of(OFFICE_SPEC))
    with pytest.raises(ValueError, match="references"):
        RowPipeline(compiled_of(DOCTOR_SPEC, DOCTORS, DOCTOR))


def test_remembered_parents_are_looked_up_once_and_missing_ones_every_time():
    asked: list[tuple[str, list[str]]] = []
    stored = {"1": uuid.uuid4(), "2": uuid.uuid4(), "3": uuid.uuid4()}

    def lookup(parent, keys):
        asked.append((parent, sorted(keys)))
        return {key: stored[key] for key in keys if key in stored}

    parents = RememberedParents(lookup, limit=2)

    assert parents("office", ["1", "2", "9"]) == {"1": stored["1"], "2": stored["2"]}
    assert parents("office", ["1", "2", "9"]) == {"1": stored["1"], "2": stored["2"]}
    stored["9"] = uuid.uuid4()  # written since: found now
    assert parents("office", ["2", "9", "3"]) == {k: stored[k] for k in ("2", "9", "3")}
    # Each parent entity its own; the limit keeps the first keys found, asks for the rest.
    assert parents("doctor", ["1"]) == {"1": stored["1"]}
    assert asked == [
        ("office", ["1", "2", "9"]),
        ("office", ["9"]),
        ("office", ["3", "9"]),
        ("doctor", ["1"]),
    ]
