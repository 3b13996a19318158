"""URL routes: login, the runs dashboard, audit pages, the mapping editor, the admin, RQ."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required, permission_required
from django.urls import URLPattern, include, path
from django_rq import urls as rq_urls


def _operators_only(pattern: URLPattern) -> URLPattern:
    """The RQ dashboard shows and clears queues: only for those who control runs."""
    view = login_required(
        permission_required("migrationsapp.control_migration", raise_exception=True)(
            pattern.callback
        )
    )
    return URLPattern(pattern.pattern, view, pattern.default_args, pattern.name)


urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include(("migrationsapp.views.runs_urls", "runs"))),
    path("audit/", include(("migrationsapp.views.audit_urls", "audit"))),
    path("mappings/", include(("migrationsapp.views.mapping_urls", "mappings"))),
    path("admin/", admin.site.urls),
    path(
        "django-rq/",
        include(([_operators_only(p) for p in rq_urls.urlpatterns], rq_urls.app_name)),
    ),
]
