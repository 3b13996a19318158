"""Routes of the connections pages (namespace ``connections``, mounted at ``/connections/``)."""

from django.urls import path

from . import connections

urlpatterns = [
    path("", connections.connection_list, name="list"),
    path("new/", connections.new, name="new"),
    path("<slug:name>/", connections.detail, name="detail"),
    path("<slug:name>/edit/", connections.edit, name="edit"),
    path("<slug:name>/test/", connections.test, name="test"),
]
