"""The diffmig Django app."""

from django.apps import AppConfig


class MigrationsAppConfig(AppConfig):
    name = "migrationsapp"
    verbose_name = "Differential migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
