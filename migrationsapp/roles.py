"""The three roles of diffmig as Django groups, and the permissions each holds.

Used by the data migration that creates the groups and by the tests' personas, so that
the two never disagree.
"""

from __future__ import annotations

MAPPING_EDITORS = "mapping editors"
OPERATORS = "operators"
AUDITORS = "auditors"

ALL_MODELS = (
    "migrationstatus",
    "migrationcontrol",
    "migrationcheckpoint",
    "differentialanalysisresult",
    "analysischange",
    "migrationexecutionlog",
    "recordmap",
    "recordevent",
    "quarantinedrecord",
    "schemamappingdefinition",
    "fieldmapping",
    "validationrule",
    "transformationfunction",
    "connection",
)
MAPPING_MODELS = (
    "schemamappingdefinition",
    "fieldmapping",
    "validationrule",
    "transformationfunction",
    "connection",
)

VIEW_ALL = tuple(f"view_{model}" for model in ALL_MODELS)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    AUDITORS: VIEW_ALL,
    OPERATORS: (
        *VIEW_ALL,
        "launch_migration",
        "control_migration",
        # Operators mark quarantined records for retry or as resolved.
        "change_quarantinedrecord",
    ),
    MAPPING_EDITORS: (
        *VIEW_ALL,
        *(f"{verb}_{model}" for model in MAPPING_MODELS for verb in ("add", "change", "delete")),
    ),
}
