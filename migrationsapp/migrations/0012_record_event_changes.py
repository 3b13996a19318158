"""A record event keeps the destination fields an update changed, and who may see their values."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("migrationsapp", "0011_roles_for_verify_runs_and_schedules")]

    operations = [
        migrations.AlterModelOptions(
            name="recordevent",
            options={
                "ordering": ["id"],
                "permissions": [("see_record_values", "Can see the values an update changed")],
            },
        ),
        migrations.AddField(
            model_name="recordevent",
            name="changes",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
