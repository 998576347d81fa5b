"""Who may see the staff pages and endpoints: one decorator for the quality, export and training dashboards,
and its twin permission class for the API."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from rest_framework import permissions
from rest_framework.request import Request


def staff_required(view: Callable) -> Callable:
    """Anonymous visitors go to the login page; signed-in non-staff get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("Only staff can see this page.")
        return view(request, *args, **kwargs)

    return wrapper


class IsStaff(permissions.BasePermission):
    """The API's twin of `staff_required`."""

    message = "Only staff may do this."

    def has_permission(self, request: Request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
