"""The connection form of the admin and the pages: the password is write-only.

The password field renders empty (empty = keep the stored one, or tick "clear"); a password
typed into the URL is moved out of it before the form is even validated, so not even a form
with errors echoes it back (a URL whose password cannot be read unambiguously, or that
carries one as a query option, comes back without it and is refused). A literal URL is
checked against the connection policy (hosts, options, never the control database) on save.
"""

from __future__ import annotations

import zoneinfo

from django import forms

from migrationsapp.engine.connection_policy import check_url, template_problems
from migrationsapp.engine.connection_urls import placeholder_names, redact_url, strip_password
from migrationsapp.engine.errors import ConfigurationError
from migrationsapp.models import Connection
from migrationsapp.services.connections import read_url_password
from migrationsapp.services.databases import connection_policy


class ConnectionForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: stored encrypted, never shown. Leave empty to keep the stored one.",
    )
    clear_password = forms.BooleanField(required=False, label="Clear the stored password")

    class Meta:
        model = Connection
        fields = ("name", "url", "timezone", "schema")

    def __init__(self, data=None, *args, **kwargs):
        self.url_refusal = ""
        if data is not None and data.get("url"):
            data = data.copy()
            url = data["url"]
            problems = template_problems(url)
            if problems:
                # Refused as written: echo back none of what could be a password.
                self.url_refusal = problems[0]
                data["url"] = redact_url(strip_password(url))
            else:
                read = read_url_password(url)
                data["url"] = read.url
                if read.literal and not data.get("password"):
                    # Move the password out of the URL now: a re-rendered form must not echo it.
                    data["password"] = read.literal
        super().__init__(data, *args, **kwargs)

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if self.url_refusal:
            raise forms.ValidationError(self.url_refusal)
        if not placeholder_names(url):
            # A literal URL is checked now; one with ${…} when it is opened.
            try:
                check_url(url, connection_policy())
            except ConfigurationError as exc:
                raise forms.ValidationError(str(exc)) from None
        return url

    def clean_timezone(self) -> str:
        name = self.cleaned_data["timezone"]
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise forms.ValidationError(
                f"{name!r} is not a time zone name (e.g. UTC, Europe/Paris)."
            ) from exc
        return name

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_password") and cleaned.get("password"):
            raise forms.ValidationError("Either type a new password or clear it, not both.")
        url = cleaned.get("url")
        if url and cleaned.get("password") and read_url_password(url).from_environment:
            raise forms.ValidationError(
                "This URL takes its password from the environment (${DIFFMIG_…}): "
                "leave the password field empty."
            )
        return cleaned

    @property
    def password_to_store(self) -> str | None:
        """``None`` keeps the stored password, ``""`` clears it, anything else replaces it."""
        if self.cleaned_data.get("clear_password"):
            return ""
        return self.cleaned_data.get("password") or None
