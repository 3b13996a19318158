"""diffmig's admin: connections and mapping definitions for editors, the rest read-only.

Importing the modules registers every model of the app with the default admin site.
"""

from django.contrib import admin

from . import connections, mappings, records, sessions, verify_schedules

__all__ = ["connections", "mappings", "records", "sessions", "verify_schedules"]

admin.site.site_header = "diffmig"
admin.site.site_title = "diffmig admin"
admin.site.index_title = "Connections, mappings and what the runs did"
