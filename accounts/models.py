"""API tokens, stored as digests: the key itself is shown once, when it is made, and never stored."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models


def password_fingerprint(password_hash: str) -> str:
    """Changes whenever the password does: a token made before a password change no longer matches."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


class ApiToken(models.Model):
    """One API token per user. Rotating replaces it; revoking deletes it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    # sha256 of the key: a stolen database (or admin screen) gives no usable token. The key is 256 random
    # bits, so a fast unsalted hash is enough: there is nothing to guess.
    digest = models.CharField(max_length=64, unique=True)
    # The key's first characters, so the owner can tell which key this is.
    prefix = models.CharField(max_length=8)
    password_fingerprint = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    def matches_password(self) -> bool:
        return self.password_fingerprint == password_fingerprint(self.user.password)
