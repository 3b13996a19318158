"""Operators see the values an update changed (the permission came in 0012)."""

from django.db import migrations


def sync_roles(apps, schema_editor):
    from migrationsapp.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [("migrationsapp", "0012_record_event_changes")]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
