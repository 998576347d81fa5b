"""Middleware for development (DEBUG on, as bin/run runs): the site's own 404 page instead of Django's URL list."""

from __future__ import annotations

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.views.defaults import page_not_found


class StyledNotFoundMiddleware:
    """With DEBUG on, Django answers a 404 with its technical page (every URL pattern) and never calls handler404:
    this answers it with 404.html, as production does. Only installed when DEBUG is on (settings.MIDDLEWARE)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404 as exc:
            return page_not_found(request, exc)  # CommonMiddleware may still redirect to the path with a slash
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        return None
