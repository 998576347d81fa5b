"""Making, finding and revoking API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, password_fingerprint

PREFIX_LENGTH = 8
# Writing last_used on every request would make every API call a write; once a minute is enough to see use.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_refusal(actor: AbstractBaseUser, target: AbstractBaseUser) -> str | None:
    """Why `actor` may not issue, rotate or revoke `target`'s token (None when they may).

    A token is its user's every right: whoever issues one for someone else can act as them. So the caller must
    hold every permission the target holds, and only a superuser reaches a superuser. The caller's own token is
    always theirs to manage. The API and the admin both ask this.
    """
    if actor.pk == target.pk:
        return None
    username = target.get_username()
    if target.is_superuser and not actor.is_superuser:
        return f"Only a superuser may manage the token of {username}, a superuser."
    missing = sorted(target.get_all_permissions() - actor.get_all_permissions())
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        return f"{username} holds permissions you do not ({shown}): you may not manage their token."
    return None


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def issue_token(user: AbstractBaseUser) -> tuple[ApiToken, str]:
    """A new token for `user`, replacing any old one. Returns the row and the key, which is not kept anywhere."""
    # The prefix is extra characters, not part of the 256 secret bits.
    key = secrets.token_urlsafe(6)[:PREFIX_LENGTH] + secrets.token_urlsafe(32)
    ApiToken.objects.filter(user=user).delete()
    token = ApiToken.objects.create(
        user=user,
        digest=key_digest(key),
        prefix=key[:PREFIX_LENGTH],
        password_fingerprint=password_fingerprint(user.password),
    )
    return token, key


def revoke_token(user: AbstractBaseUser) -> bool:
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    return bool(deleted)


def current_token(user: AbstractBaseUser) -> ApiToken | None:
    """The user's live token; one left over from before a password change is deleted and not returned."""
    token = ApiToken.objects.filter(user=user).select_related("user").first()
    if token is not None and not token.matches_password():
        token.delete()
        return None
    return token


def token_for_key(key: str) -> ApiToken | None:
    """The live token with this key, or None. Marks it used."""
    token = ApiToken.objects.filter(digest=key_digest(key)).select_related("user").first()
    if token is None:
        return None
    if not token.matches_password():
        token.delete()  # the password changed since the token was made: it died with the old password
        return None
    now = timezone.now()
    if token.last_used is None or now - token.last_used > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
        token.last_used = now
    return token
