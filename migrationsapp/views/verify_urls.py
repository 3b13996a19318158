"""URLs of verify in the web (namespace ``verify``): the history, a launch, a run's report."""

from django.urls import path

from migrationsapp.views import verify

urlpatterns = [
    path("", verify.verify_list, name="list"),
    path("launch/", verify.verify_launch, name="launch"),
    path("<uuid:run_id>/", verify.verify_report, name="report"),
]
