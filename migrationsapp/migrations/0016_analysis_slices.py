"""An analysis reads its source in committed key slices: its status and read checkpoint."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("migrationsapp", "0015_log_actor_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="differentialanalysisresult",
            name="rows_seen",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="differentialanalysisresult",
            name="slice_checkpoint",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="differentialanalysisresult",
            name="slices_done",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="differentialanalysisresult",
            name="status",
            field=models.CharField(
                choices=[("reading", "Reading"), ("complete", "Complete")],
                default="complete",
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="differentialanalysisresult",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["reading", "complete"])),
                name="analysis_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="differentialanalysisresult",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "reading")),
                fields=("session", "entity_type"),
                name="analysis_one_reading",
            ),
        ),
        migrations.AddConstraint(
            model_name="differentialanalysisresult",
            constraint=models.CheckConstraint(
                condition=models.Q(("rows_seen__gte", 0)), name="analysis_rows_seen_nonneg"
            ),
        ),
    ]
