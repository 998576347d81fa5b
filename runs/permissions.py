"""Who may see the staff pages and call the staff endpoints: Django permissions, the same ones the admin checks.

A staff route names the permissions it needs: pages with the `permission_required(*perms)` decorator, API views
with `HasPermissions` and a `required_permissions` map (action → permissions). Both ask `refusal`, so a page and
its endpoint refuse the same users with the same reason. The groups that bundle the permissions are in runs/roles.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps

from django.contrib.auth.models import AnonymousUser, Permission
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from rest_framework import permissions
from rest_framework.request import Request

STAFF_ONLY = "Only staff may do this."
STAFF_ONLY_PAGE = "Only staff can see this page."


def is_staff_member(user) -> bool:
    """Active staff; superusers count as staff (they have every permission)."""
    return bool(user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser))


def staff_context(request) -> dict[str, bool]:
    """Template context processor: `is_staff_member` for templates, the same rule the views use."""
    return {"is_staff_member": is_staff_member(request.user)}


def has_permissions(user, *perms: str) -> bool:
    """Staff holding every one of `perms` (directly or through a group)."""
    return is_staff_member(user) and user.has_perms(perms)


def describe_permission(perm: str) -> str:
    """'“Can view annotation quality figures” (annotate.view_quality)', or just the name when unknown."""
    app_label, _, codename = perm.partition(".")
    name = (
        Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        .values_list("name", flat=True)
        .first()
    )
    return f"“{name}” ({perm})" if name else perm


def refusal(user, perms: Iterable[str], not_staff: str = STAFF_ONLY) -> str | None:
    """Why `user` may not do what needs `perms` (a message for the 403), or None when they may."""
    if not is_staff_member(user):
        return not_staff
    missing = [perm for perm in perms if not user.has_perm(perm)]
    if not missing:
        return None
    names = ", ".join(describe_permission(perm) for perm in missing)
    noun = "permission" if len(missing) == 1 else "permissions"
    return f"This needs the {noun} {names}. Ask an administrator to add you to a group that has it."


def permission_required(*perms: str) -> Callable[[Callable], Callable]:
    """Pages: anonymous visitors go to the login page; signed-in users without every one of `perms` get 403
    with the reason (which permission is missing)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            reason = refusal(request.user, perms, STAFF_ONLY_PAGE)
            if reason is not None:
                raise PermissionDenied(reason)
            return view(request, *args, **kwargs)

        wrapper.required_permissions = perms  # type: ignore[attr-defined]  # for tests and readers
        return wrapper

    return decorator


class HasPermissions(permissions.BasePermission):
    """The API's twin of `permission_required`: the view's `required_permissions` maps each action (a viewset's
    action name, or an APIView's lower-case HTTP method) to the permissions it needs; an empty tuple means any
    signed-in user. An action the map does not name is refused, so a new action cannot slip through unchecked."""

    message = STAFF_ONLY

    def has_permission(self, request: Request, view) -> bool:
        user = request.user or AnonymousUser()
        if not user.is_authenticated:
            return False  # DRF answers 401
        method = "get" if request.method == "HEAD" else request.method.lower()
        action = getattr(view, "action", None) or method
        if not hasattr(view, action):
            return True  # no handler for this method: DRF answers 405, and nothing happens
        required = getattr(view, "required_permissions", {}).get(action)
        if required is None:
            self.message = f"{type(view).__name__} does not say who may {action}: refused."
            return False
        if not required:
            return True
        reason = refusal(user, required)
        if reason is not None:
            self.message = reason
        return reason is None
