"""The account page: the signed-in user's API token."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from accounts.tokens import current_token, issue_token, revoke_token


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
