"""Who may see the staff pages: one decorator for the quality, export and training dashboards."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


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
