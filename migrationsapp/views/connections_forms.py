"""The connection form of the pages: the admin's form, one piece for both.

``ConnectionForm`` (``forms.connections``) keeps the password write-only (never rendered,
moved out of a typed URL before validation) and checks a literal URL against the connection
policy (``DIFFMIG_ALLOWED_DB_HOSTS``, driver options, never the control database). On the
page a connection's name is fixed once it exists (mappings name it), and a new connection
has no stored password to clear.
"""

from __future__ import annotations

from migrationsapp.forms.connections import ConnectionForm


class NewConnectionForm(ConnectionForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["clear_password"]


class EditConnectionForm(ConnectionForm):
    class Meta(ConnectionForm.Meta):
        fields = ("url", "timezone", "schema")
