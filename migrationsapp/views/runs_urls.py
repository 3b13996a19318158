"""URLs of the runs pages (namespace ``runs``): the dashboard, the launch, one session's page."""

from django.urls import path

from migrationsapp.views import runs, runs_session

urlpatterns = [
    path("", runs.dashboard, name="dashboard"),
    path("launch/analyze/", runs.analyze, name="analyze"),
    path("launch/", runs.launch, name="launch"),
    path("sessions/<uuid:session_id>/", runs_session.session_detail, name="session"),
    path("sessions/<uuid:session_id>/logs/", runs_session.session_log, name="session_log"),
    path("sessions/<uuid:session_id>/pause/", runs_session.pause_session, name="pause"),
    path("sessions/<uuid:session_id>/resume/", runs_session.resume_session, name="resume"),
    path("sessions/<uuid:session_id>/cancel/", runs_session.cancel_session, name="cancel"),
]
