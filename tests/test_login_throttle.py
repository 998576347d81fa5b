"""Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failures for one account from one address, or
LOGIN_WIDE_FAILURE_LIMIT for one account or from one address, the login form and the token endpoint refuse every
attempt, the right password included, with a message that says why; the form says how many attempts are left."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.conftest import PASSWORD

LOGIN_URL = "/accounts/login/"
TOKEN_URL = "/api/auth/token/"
LIMIT = 3
WIDE_LIMIT = 7


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.LOGIN_WIDE_FAILURE_LIMIT = WIDE_LIMIT


def form_login(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(LOGIN_URL, {"username": username, "password": password}, REMOTE_ADDR=address)


def api_login(username: str, password: str, address: str = "10.0.0.1"):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_the_login_form_refuses_the_right_password_after_the_limit(client, alice):
    for _ in range(LIMIT - 1):
        response = form_login(client, "alice", "wrong")
        assert response.status_code == 200 and "didn't match" in response.content.decode()
    response = form_login(client, "alice", "wrong")
    assert response.status_code == 429, "the limit-th failure locks"
    response = form_login(client, "alice", PASSWORD)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page and "15 minutes" in page
    assert response["Retry-After"] == "900"
    assert not logged_in(client)


def test_below_the_limit_the_right_password_logs_in(client, alice):
    for _ in range(LIMIT - 1):
        form_login(client, "alice", "wrong")
    response = form_login(client, "alice", PASSWORD)
    assert response.status_code == 302 and logged_in(client)


def test_an_account_is_locked_whatever_the_address_after_the_wide_limit(client, alice):
    for number in range(WIDE_LIMIT - 1):
        form_login(client, "alice", "wrong", address=f"10.0.1.{number}")
    assert form_login(client, "alice", PASSWORD, address="10.0.2.1").status_code == 302, "below the wide limit"
    client.logout()
    form_login(client, "alice", "wrong", address="10.0.1.99")
    assert form_login(client, "alice", PASSWORD, address="10.0.2.2").status_code == 429
    assert not logged_in(client)
    assert form_login(client, "bob-who-does-not-exist", "x", address="10.0.2.1").status_code == 200, (
        "another account from a fresh address is not locked"
    )


def test_an_address_is_locked_whatever_the_account_after_the_wide_limit(client, alice):
    for number in range(WIDE_LIMIT):
        form_login(client, f"guess{number}", "wrong", address="10.0.3.1")
    assert form_login(client, "alice", PASSWORD, address="10.0.3.1").status_code == 429
    assert not logged_in(client)
    assert form_login(client, "alice", PASSWORD, address="10.0.3.2").status_code == 302, "another address is not"


def test_wrong_passwords_for_bob_do_not_lock_alice_out_on_the_same_address(client, alice, bob, settings):
    """Many annotators share one address behind a NAT: the defaults, 10 for a pair, 100 for an address."""
    settings.AXES_FAILURE_LIMIT, settings.LOGIN_WIDE_FAILURE_LIMIT = 10, 100
    for _ in range(10):
        form_login(client, "bob", "wrong")
    assert form_login(client, "bob", PASSWORD).status_code == 429, "bob is locked on this address"
    assert form_login(client, "bob", PASSWORD, address="10.9.9.9").status_code == 302, "but not from elsewhere"
    client.logout()
    assert form_login(client, "alice", PASSWORD).status_code == 302 and logged_in(client)


def test_the_login_form_says_how_many_attempts_are_left(client, alice):
    page = form_login(client, "alice", "wrong").content.decode()
    assert "2 more failed attempts and logins as “alice” from this address are refused for 15 minutes." in page
    page = form_login(client, "alice", "wrong").content.decode()
    assert "1 more failed attempt and logins as “alice” from this address are refused" in page
    # Failures from the address for other accounts count toward its wide limit (7): the lower number is shown.
    for number in range(5):
        form_login(client, f"guess{number}", "wrong", address="10.0.5.1")
    page = form_login(client, "carol", "wrong", address="10.0.5.1").content.decode()
    assert "1 more failed attempt and logins as “carol” from this address" in page


def test_the_token_endpoint_refuses_the_right_password_after_the_limit(alice):
    for _ in range(LIMIT - 1):
        response = api_login("alice", "wrong")
        assert response.status_code == 400
    assert api_login("alice", "wrong").status_code == 429
    response = api_login("alice", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins" in response.json()["detail"]
    assert not ApiToken.objects.exists()


def test_failures_on_the_form_and_the_api_add_up(client, alice):
    for _ in range(LIMIT - 1):
        form_login(client, "alice", "wrong")
    api_login("alice", "wrong")
    assert api_login("alice", PASSWORD).status_code == 429
    assert form_login(client, "alice", PASSWORD).status_code == 429


def test_the_limit_is_a_setting(client, alice, settings):
    settings.AXES_FAILURE_LIMIT = LIMIT + 2
    for _ in range(LIMIT + 1):
        form_login(client, "alice", "wrong")
    assert form_login(client, "alice", PASSWORD).status_code == 302, "5 allowed: 4 failures do not lock"
    assert form_login(client, "alice", "wrong").status_code == 429, "the 5th failure does"


def test_the_admin_login_is_throttled_too(client, db):
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    for _ in range(LIMIT):
        client.post("/admin/login/", {"username": "root", "password": "wrong"}, REMOTE_ADDR="10.0.4.1")
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD}, REMOTE_ADDR="10.0.4.1")
    assert response.status_code == 429
