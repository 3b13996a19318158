"""URLs of the schedules (namespace ``schedules``): the list, create, pause, resume, delete."""

from django.urls import path

from migrationsapp.views import schedules

urlpatterns = [
    path("", schedules.schedule_list, name="list"),
    path("create/", schedules.schedule_create, name="create"),
    path("<uuid:schedule_id>/pause/", schedules.schedule_pause, name="pause"),
    path("<uuid:schedule_id>/resume/", schedules.schedule_resume, name="resume"),
    path("<uuid:schedule_id>/delete/", schedules.schedule_delete, name="delete"),
]
