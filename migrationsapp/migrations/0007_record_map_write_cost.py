"""Cheaper record-map and record-event writes: no database foreign key to the session.

Every batch writes a record-map row and a record event per record. The foreign keys from
those rows to ``migration_status`` were deferred checks, one per row and column at commit,
and the two session columns of the record map each carried an index that every update had
to maintain (and that kept the updates from being HOT). The lookups the pages and runs make
keep their indexes: the map by entity and key, and by destination UUID; the events by
record, by time (retention) and by session.

On PostgreSQL the record map also leaves a tenth of each page free (``fillfactor``), so
that updating a record's hash, version and session in a differential run can stay on its
page without touching the indexes (no indexed column changes).
"""

import django.db.models.deletion
from django.db import migrations, models


def _set_fillfactor(value: int):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE migration_mappings SET (fillfactor = {value})")

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("migrationsapp", "0006_connection_query_passwords"),
    ]

    operations = [
        migrations.AlterField(
            model_name="recordmap",
            name="first_session",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="migrationsapp.migrationstatus",
                to_field="migration_session_id",
            ),
        ),
        migrations.AlterField(
            model_name="recordmap",
            name="last_session",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="migrationsapp.migrationstatus",
                to_field="migration_session_id",
            ),
        ),
        migrations.AlterField(
            model_name="recordevent",
            name="session",
            field=models.ForeignKey(
                db_column="migration_session_id",
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="record_events",
                to="migrationsapp.migrationstatus",
                to_field="migration_session_id",
            ),
        ),
        migrations.RunPython(_set_fillfactor(90), _set_fillfactor(100), elidable=True),
    ]
