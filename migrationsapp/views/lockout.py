"""The page a throttled sign-in gets (django-axes' lockout callable, see settings).

Both sign-in pages (``/accounts/login/`` and ``/admin/login/``) end here once one user has
failed too often from one address: 429 with the time to retry and a ``Retry-After`` header.
Every attempt during the lock starts the wait again, so the time is counted from now.
"""

from __future__ import annotations

import math
from datetime import timedelta

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict | None = None,
) -> HttpResponse:
    cool_off = get_cool_off(request) or timedelta(0)
    minutes = max(1, math.ceil(cool_off.total_seconds() / 60))
    response = render(
        request,
        "registration/locked_out.html",
        {"minutes": minutes, "retry_at": timezone.now() + cool_off},
        status=429,
    )
    response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response
