"""Permission checks of the pages, with a refusal that says which role would open the page.

``permission_required(perm, …)`` does what Django's decorator of the same name does with
``raise_exception=True`` (login first, then every permission), except that the
``PermissionDenied`` it raises carries one sentence for the 403 page (``templates/403.html``):
the role (group) that grants the permission, from ``migrationsapp.roles``, and who to ask.
Django's handler puts that sentence in the page's ``exception``; a refusal raised anywhere
else shows the page's general text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from migrationsapp.roles import ROLE_PERMISSIONS

APP = "migrationsapp"


def roles_granting(permission: str) -> list[str]:
    """The roles whose group holds ``permission`` (``app.codename``), in the roles' order."""
    app, _, codename = permission.partition(".")
    if app != APP:
        return []
    return [role for role, codenames in ROLE_PERMISSIONS.items() if codename in codenames]


def refusal_text(missing: list[str]) -> str:
    """One sentence: which role opens the page, and who to ask."""
    roles: list[str] = []
    for permission in missing:
        for role in roles_granting(permission):
            if role not in roles:
                roles.append(role)
    ask = "Ask an administrator to add you to that group."
    if not roles:
        names = ", ".join(p.partition(".")[2] for p in missing)
        return f"This needs the permission {names}, which no role grants. {ask}"
    if len(roles) == 1:
        return f"This needs the {roles[0]} role. {ask}"
    listed = ", ".join(roles[:-1]) + f" or {roles[-1]}"
    return f"This needs one of the roles {listed}. Ask an administrator to add you to one."


def permission_required(
    perm: str | Iterable[str], *more: str, raise_exception: bool = True
) -> Callable:
    """Login required, then every permission; a refusal (403) names the role that grants it.

    Takes Django's forms too (one name or a tuple of names, ``raise_exception``), so that a
    view swaps Django's decorator for this one by its import alone. A logged-in user who
    lacks a permission always gets the 403 page, never the login page again.
    """
    permissions = ((perm,) if isinstance(perm, str) else tuple(perm)) + more

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            missing = [p for p in permissions if not request.user.has_perm(p)]
            if missing:
                raise PermissionDenied(refusal_text(missing))
            return view(request, *args, **kwargs)

        return login_required(checked)

    return decorate
