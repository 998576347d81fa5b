"""The account page: the signed-in user's API token."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from accounts.lockout import attempts_left
from accounts.tokens import current_token, issue_token, revoke_token


class LoginView(auth_views.LoginView):
    """Django's login form; after a failed attempt it says how many are left before logins are refused."""

    def form_invalid(self, form) -> HttpResponse:
        left = attempts_left(self.request, form.data.get("username", ""))
        lockout_minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
        context = self.get_context_data(form=form, attempts_left=left, lockout_minutes=lockout_minutes)
        return self.render_to_response(context)


@login_required
@require_http_methods(["GET", "POST"])
def api_token(request: HttpRequest) -> HttpResponse:
    new_key = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            revoke_token(request.user)
            return redirect("account-token")
        _, new_key = issue_token(request.user)
    response = render(request, "accounts/token.html", {"token": current_token(request.user), "new_key": new_key})
    add_never_cache_headers(response)  # the one response that shows the key must not stay in a cache
    return response
