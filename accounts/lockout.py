"""Login throttling (django-axes): a (username, address) pair is locked first, an address or an account only after
many more failures (many people behind one NAT must not lock each other out), and the login form says how many
attempts are left. AXES_HANDLER and AXES_LOCKOUT_CALLABLE point here."""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


def parameter_limits() -> list[int]:
    """The failure limit of each entry of AXES_LOCKOUT_PARAMETERS, in order: a combination (username and address)
    gets AXES_FAILURE_LIMIT, a single parameter (an address, an account) the higher LOGIN_WIDE_FAILURE_LIMIT."""
    return [
        settings.AXES_FAILURE_LIMIT if isinstance(parameter, list | tuple) else settings.LOGIN_WIDE_FAILURE_LIMIT
        for parameter in settings.AXES_LOCKOUT_PARAMETERS
    ]


class PairFirstHandler(AxesDatabaseHandler):
    """axes' database handler with a limit per lockout parameter (axes compares one count with one limit)."""

    def failures_and_limits(self, request: HttpRequest, credentials: dict | None = None) -> list[tuple[int, int]]:
        counts = []
        for attempts in self.get_user_attempts(request, credentials):
            failures = sum(attempts.values_list("failures_since_start", flat=True))
            counts.append(failures)
        return list(zip(counts, parameter_limits(), strict=True))

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        # Each parameter's failures in units of AXES_FAILURE_LIMIT, which axes compares them with: an address with
        # LOGIN_WIDE_FAILURE_LIMIT failures counts as AXES_FAILURE_LIMIT.
        return max(
            (
                failures * settings.AXES_FAILURE_LIMIT // limit
                for failures, limit in self.failures_and_limits(request, credentials)
            ),
            default=0,
        )

    def attempts_left(self, request: HttpRequest, credentials: dict | None = None) -> int:
        return max(0, min(limit - failures for failures, limit in self.failures_and_limits(request, credentials)))


def attempts_left(request: HttpRequest, username: str) -> int:
    """Failed logins still allowed for `username` from this request's address before either is locked."""
    AxesProxyHandler.update_request(request)
    return PairFirstHandler().attempts_left(request, {"username": username})


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many failed logins for this account from this address ({settings.AXES_FAILURE_LIMIT}), or for this "
        f"account or from this address ({settings.LOGIN_WIDE_FAILURE_LIMIT}). Logins are refused until {minutes} "
        "minutes have passed without another failed attempt."
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": lockout_message()}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": lockout_message()}, status=429)
    response["Retry-After"] = retry_after
    return response
