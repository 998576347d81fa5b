"""DRF authentication by `Authorization: Token <key>`, against the hashed ApiToken table."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from accounts.tokens import token_for_key


class HashedTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication (same header, same 401 with `WWW-Authenticate: Token`), looking keys up by digest."""

    def authenticate_credentials(self, key: str):
        token = token_for_key(key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token
