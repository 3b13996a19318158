"""The three roles of diffmig as Django groups, and the permissions each holds.

Used by the data migrations that create and update the groups (``sync_role_groups``) and by
the tests' personas, so that the two never disagree.
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
    "verifyrun",
    "verifyentityreport",
    "runschedule",
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
        # Operators see the values an update changed (auditors, the field names only).
        "see_record_values",
    ),
    MAPPING_EDITORS: (
        *VIEW_ALL,
        *(f"{verb}_{model}" for model in MAPPING_MODELS for verb in ("add", "change", "delete")),
    ),
}

_MODEL_VERBS = ("add", "change", "delete", "view")


def sync_role_groups(apps) -> None:
    """Give each role group exactly its permissions, as far as ``apps``' models go.

    ``apps`` is a migration's state: a permission of a model, or a custom permission, that a
    later migration adds is left for that migration, which calls this again (a custom one
    counts as added once a model's ``Meta.permissions`` declares it). Any other missing
    permission (a typo of a model's permission) stops the migration; ``test_roles`` checks
    that every permission a role names exists once all migrations ran.
    """
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations ran; make sure ours exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    models = list(apps.get_app_config("migrationsapp").get_models())
    models_now = {m._meta.model_name for m in models}
    # Custom permissions as the models declare them at this point of the migrations.
    custom_now = {codename for m in models for codename, _ in m._meta.permissions}

    def exists_yet(codename: str) -> bool:
        verb, _, model = codename.partition("_")
        # Custom permissions are named apart from a model's own (see_…, launch_…).
        return model in models_now if verb in _MODEL_VERBS else codename in custom_now

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in ROLE_PERMISSIONS.items():
        wanted = [c for c in codenames if exists_yet(c)]
        group, _ = Group.objects.get_or_create(name=group_name)
        permissions = Permission.objects.filter(
            content_type__app_label="migrationsapp", codename__in=wanted
        )
        missing = set(wanted) - set(permissions.values_list("codename", flat=True))
        if missing:
            raise RuntimeError(f"permissions missing for group {group_name!r}: {sorted(missing)}")
        group.permissions.set(permissions)
