"""Who resolved a quarantine entry by hand and the note they gave (both empty when a run did);
an index on a record's quarantine entries, resolved ones included, for the lookup page.

The index is built on a table that may be large: apply this migration with no run active.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("migrationsapp", "0007_record_map_write_cost"),
    ]

    operations = [
        migrations.AddField(
            model_name="quarantinedrecord",
            name="resolved_by",
            field=models.CharField(blank=True, db_default="", default="", max_length=150),
        ),
        migrations.AddField(
            model_name="quarantinedrecord",
            name="resolution_note",
            field=models.TextField(blank=True, db_default="", default=""),
        ),
        migrations.AddIndex(
            model_name="quarantinedrecord",
            index=models.Index(
                fields=["entity_type", "legacy_key_text"], name="quarantine_record_idx"
            ),
        ),
    ]
