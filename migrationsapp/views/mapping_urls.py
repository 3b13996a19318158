"""Routes of the mapping editor (namespace ``mappings``, mounted at ``/mappings/``)."""

from django.urls import path

from . import mapping_edit, mappings

urlpatterns = [
    path("", mappings.mapping_list, name="list"),
    path("export.yaml", mappings.export_yaml, name="export"),
    path("import/", mappings.import_mapping, name="import"),
    path("<uuid:pk>/", mappings.detail, name="detail"),
    path("<uuid:pk>/edit/", mapping_edit.edit, name="edit"),
    path("<uuid:pk>/validate/", mappings.validate, name="validate"),
    path("<uuid:pk>/preview/", mappings.preview, name="preview"),
    path("<uuid:pk>/clone/", mappings.clone, name="clone"),
    path("<uuid:pk>/activate/", mappings.activate, name="activate"),
    path("<uuid:pk>/activate/confirm/", mappings.activate_confirm, name="activate_confirm"),
    path("<str:entity>/diff/", mappings.diff, name="diff"),
]
