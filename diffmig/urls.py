"""URL routes: login, the runs dashboard, audit pages, the mapping editor, connections, the
admin, RQ."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from migrationsapp.views.rq_dashboard import dashboard_urlpatterns

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include(("migrationsapp.views.runs_urls", "runs"))),
    path("audit/", include(("migrationsapp.views.audit_urls", "audit"))),
    path("mappings/", include(("migrationsapp.views.mapping_urls", "mappings"))),
    path("verify/", include(("migrationsapp.views.verify_urls", "verify"))),
    path("schedules/", include(("migrationsapp.views.schedules_urls", "schedules"))),
    path("connections/", include(("migrationsapp.views.connections_urls", "connections"))),
    path("admin/", admin.site.urls),
    # The RQ dashboard: for those who control runs, and only when there is a queue to show.
    path("django-rq/", include((dashboard_urlpatterns(), "django_rq"))),
]
