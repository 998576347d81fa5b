"""Site-wide pages: the error pages' handlers live in templates (403.html, 404.html, 500.html); these are the rest."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.templatetags.static import static
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says (the admin, the Swagger UI): send them to the SVG."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


# The split view serves its start-up script as a file: the Content-Security-Policy allows no inline script.
_swagger_ui = SpectacularSwaggerSplitView.as_view(
    url_name="api-schema", permission_classes=[IsAuthenticated], template_name="api/swagger_ui.html"
)


def api_docs(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """The Swagger UI, for signed-in users. A visitor in a browser gets the login page (and comes back here after)
    instead of a bare 401; API clients (no HTML accepted, or a token given) keep the API's 401."""
    from_browser = "text/html" in request.headers.get("Accept", "") and "Authorization" not in request.headers
    if from_browser and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return _swagger_ui(request, *args, **kwargs)
