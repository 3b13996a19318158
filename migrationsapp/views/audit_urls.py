"""Routes of the audit pages (namespace ``audit``, mounted at ``/audit/``)."""

from django.urls import path

from . import audit, audit_quarantine

urlpatterns = [
    path("sessions/", audit.history, name="history"),
    path("logs/", audit.logs, name="logs"),
    path("logs.csv", audit.logs_csv, name="logs_csv"),
    path("lookup/", audit.lookup, name="lookup"),
    path("quarantine/", audit_quarantine.quarantine, name="quarantine"),
    path("quarantine.csv", audit_quarantine.quarantine_csv, name="quarantine_csv"),
    path("quarantine/bulk/", audit_quarantine.quarantine_bulk, name="quarantine_bulk"),
    path("quarantine/<int:pk>/retry/", audit_quarantine.quarantine_retry, name="quarantine_retry"),
    path(
        "quarantine/<int:pk>/resolve/",
        audit_quarantine.quarantine_resolve,
        name="quarantine_resolve",
    ),
]
