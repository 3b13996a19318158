"""``{{ value|words }}``: an identifier for people (``not_migrated`` → ``not migrated``)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def words(value: object) -> str:
    return str(value).replace("_", " ")
