"""``{% next_scheduled_runs as upcoming %}``: the schedules for the runs dashboard's partial.

A tag, so that the dashboard shows the next runs by including one partial (the selector
does the reading).
"""

from __future__ import annotations

from django import template

from migrationsapp.selectors.verify_runs import schedules_overview

register = template.Library()


@register.simple_tag
def next_scheduled_runs():
    return schedules_overview()
