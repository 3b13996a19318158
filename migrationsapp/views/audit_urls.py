"""Routes of the audit pages (namespace ``audit``, mounted at ``/audit/``)."""

from django.urls import path

from . import audit

urlpatterns = [
    path("sessions/", audit.history, name="history"),
    path("logs/", audit.logs, name="logs"),
    path("logs.csv", audit.logs_csv, name="logs_csv"),
    path("lookup/", audit.lookup, name="lookup"),
    path("quarantine/", audit.quarantine, name="quarantine"),
    path("quarantine/<int:pk>/retry/", audit.quarantine_retry, name="quarantine_retry"),
    path("quarantine/<int:pk>/resolve/", audit.quarantine_resolve, name="quarantine_resolve"),
]
