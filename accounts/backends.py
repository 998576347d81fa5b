"""django-axes' login guard, tolerant of logins that have no request."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuses a locked-out account or address (django-axes).

    Every login from the web (login form, admin, token endpoint) passes its request; a call without one
    (the shell, a management command, Django's test client `login()`) has no address to throttle and is
    left to the next backend, where django-axes would raise instead.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
