"""The role groups read stored verifications and schedules too (their models came in 0010)."""

from django.db import migrations


def sync_roles(apps, schema_editor):
    from migrationsapp.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [("migrationsapp", "0010_verify_runs_and_schedules")]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
