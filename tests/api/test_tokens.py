"""API tokens: made, seen, rotated and revoked by their user (staff: anyone's who holds no right they lack), stored
as digests, dead after a password change, never shown in the admin."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.conftest import PASSWORD

TOKEN_URL = "/api/auth/token/"


def obtain(username: str, password: str = PASSWORD) -> str:
    response = APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["token"]


def with_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def works(key: str) -> bool:
    status = with_token(key).get("/api/batches/").status_code
    assert status in (200, 401)
    return status == 200


def test_the_key_is_stored_only_as_its_sha256_digest(alice):
    key = obtain("alice")
    token = ApiToken.objects.get(user=alice)
    assert token.digest == hashlib.sha256(key.encode()).hexdigest()
    stored = " ".join(str(value) for value in ApiToken.objects.values().get().values())
    assert key not in stored
    assert key.startswith(token.prefix) and len(key) >= 40
    assert works(key)


def test_a_user_sees_their_token_without_its_key(alice):
    key = obtain("alice")
    response = with_token(key).get(TOKEN_URL)
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "alice" and body["prefix"] == key[:8] and body["last_used"] is not None
    assert "token" not in body and key not in response.content.decode()


def test_posting_again_rotates_the_token_and_the_old_key_dies(alice):
    old = obtain("alice")
    response = with_token(old).post(TOKEN_URL)  # as the signed-in user, no password needed
    assert response.status_code == 200
    new = response.json()["token"]
    assert new != old and works(new) and not works(old)
    assert ApiToken.objects.filter(user=alice).count() == 1


def test_delete_revokes_the_token(alice):
    key = obtain("alice")
    assert with_token(key).delete(TOKEN_URL).status_code == 204
    assert not works(key)
    assert not ApiToken.objects.exists()
    session = APIClient()
    session.force_authenticate(alice)
    assert session.get(TOKEN_URL).status_code == 404
    assert session.delete(TOKEN_URL).status_code == 404


def test_a_password_change_kills_the_token(alice):
    key = obtain("alice")
    alice.set_password("a-new-long-password")
    alice.save()
    assert not works(key)
    assert not ApiToken.objects.exists()


def test_anonymous_gets_no_token_information():
    client = APIClient()
    assert client.get(TOKEN_URL).status_code == 401
    assert client.delete(TOKEN_URL).status_code == 401
    response = client.post(TOKEN_URL, {}, format="json")
    assert response.status_code == 400 and "non_field_errors" in response.json()


def test_staff_manage_anyones_token_and_annotators_do_not(alice, bob, charlie):
    bob_key = obtain("bob")
    url = "/api/auth/tokens/bob/"
    annotator = with_token(obtain("alice"))
    for method in ("get", "post", "delete"):
        assert getattr(annotator, method)(url).status_code == 403
    assert works(bob_key)

    staff = APIClient()
    staff.force_authenticate(charlie)
    assert staff.get(url).json()["prefix"] == bob_key[:8]
    response = staff.post(url)
    assert response.status_code == 200
    new_key = response.json()["token"]
    assert works(new_key) and not works(bob_key)
    assert staff.delete(url).status_code == 204
    assert not works(new_key)
    assert staff.get(url).status_code == 404
    assert staff.get("/api/auth/tokens/nobody/").status_code == 404


def test_staff_without_the_token_permissions_cannot_manage_tokens(bob, django_user_model):
    obtain("bob")
    clerk = django_user_model.objects.create_user("clerk", password=PASSWORD, is_staff=True)
    client = APIClient()
    client.force_authenticate(clerk)
    assert client.get("/api/auth/tokens/bob/").status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_apitoken"))
    client.force_authenticate(django_user_model.objects.get(pk=clerk.pk))  # a fresh permission cache
    assert client.get("/api/auth/tokens/bob/").status_code == 200
    assert client.delete("/api/auth/tokens/bob/").status_code == 403


def test_the_admin_lists_tokens_without_key_or_digest(alice, charlie_client):
    key = obtain("alice")
    token = ApiToken.objects.get()
    page = charlie_client.get("/admin/accounts/apitoken/").content.decode()
    assert token.prefix in page
    assert key not in page and token.digest not in page
    detail = charlie_client.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()
    assert key not in detail and token.digest not in detail


@pytest.mark.parametrize("action", ["rotate", "revoke"])
def test_the_account_page_shows_a_new_key_once_and_revokes(alice, alice_client, action):
    page = alice_client.get("/accounts/token/")
    assert page.status_code == 200 and "You have no API token" in page.content.decode()
    response = alice_client.post("/accounts/token/", {"action": "rotate"})
    token = ApiToken.objects.get(user=alice)
    key = re.search(r'<code class="token-key">([\w-]+)</code>', response.content.decode()).group(1)
    assert key.startswith(token.prefix)
    assert works(key)
    assert "no-store" in response["Cache-Control"]
    again = alice_client.get("/accounts/token/").content.decode()
    assert key not in again and token.prefix in again
    if action == "revoke":
        assert alice_client.post("/accounts/token/", {"action": "revoke"}).status_code == 302
        assert not works(key)
    else:
        alice_client.post("/accounts/token/", {"action": "rotate"})
        assert not works(key)


# Who may issue (POST) or revoke (DELETE) whose token: a token is its user's every right, so the caller must hold
# every permission the target holds, and only a superuser reaches a superuser. docs/reliability.md shows this table.
TOKEN_PERMISSIONS = ["view_apitoken", "change_apitoken", "delete_apitoken"]
CALLERS = ["root", "charlie", "clerk", "curator_clerk", "alice"]
TARGETS = ["root", "charlie", "curator", "clerk", "alice"]
ALLOWED = {
    "root": {"root", "charlie", "curator", "clerk", "alice"},
    "charlie": {"charlie", "curator", "clerk", "alice"},  # every permission, but not a superuser
    "clerk": {"clerk", "alice"},  # only the API-token permissions
    "curator_clerk": {"curator", "clerk", "alice"},  # the curator group plus the API-token permissions
    "alice": set(),  # an annotator: no API-token permission at all
}


@pytest.fixture
def token_users(django_user_model, alice, charlie, curator):
    root = django_user_model.objects.create_superuser("root", password=PASSWORD)
    token_permissions = Permission.objects.filter(content_type__app_label="accounts", codename__in=TOKEN_PERMISSIONS)
    clerk = django_user_model.objects.create_user("clerk", password=PASSWORD, is_staff=True)
    clerk.user_permissions.set(token_permissions)
    curator_clerk = django_user_model.objects.create_user("curator_clerk", password=PASSWORD, is_staff=True)
    curator_clerk.groups.set(curator.groups.all())
    curator_clerk.user_permissions.set(token_permissions)
    users = {"root": root, "charlie": charlie, "curator": curator, "clerk": clerk, "curator_clerk": curator_clerk}
    return {**users, "alice": alice}


@pytest.mark.parametrize("method", ["post", "delete"])
@pytest.mark.parametrize("caller", CALLERS)
def test_a_token_is_issued_or_revoked_only_for_users_with_no_more_rights(token_users, caller, method):
    client = APIClient()
    client.force_authenticate(token_users[caller])
    for target in TARGETS:
        old_key = obtain(target)
        response = getattr(client, method)(f"/api/auth/tokens/{target}/")
        allowed = target in ALLOWED[caller]
        assert response.status_code == ((200 if method == "post" else 204) if allowed else 403), (
            caller,
            target,
            response.content,
        )
        assert works(old_key) is not allowed, (caller, target)  # a refusal leaves the target's key working
        if not allowed and caller != "alice":
            assert target in response.json()["detail"]  # the reason names whose token it is


def test_the_token_admin_refuses_to_revoke_a_superusers_token(token_users, client):
    key = obtain("root")
    token = ApiToken.objects.get(user=token_users["root"])
    client.force_login(token_users["clerk"])
    assert client.get(f"/admin/accounts/apitoken/{token.pk}/delete/").status_code == 403
    assert client.post(f"/admin/accounts/apitoken/{token.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post(
        "/admin/accounts/apitoken/", {"action": "delete_selected", "_selected_action": [token.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302, 403)
    assert works(key) and ApiToken.objects.filter(pk=token.pk).exists()
    alice_key = obtain("alice")
    alice_token = ApiToken.objects.get(user=token_users["alice"])
    assert client.post(f"/admin/accounts/apitoken/{alice_token.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not works(alice_key)
