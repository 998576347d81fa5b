"""Errors people can read: styled 403/404/500 pages, expected denials not logged as errors, the API docs offer
the login, and a favicon."""

from __future__ import annotations

import logging

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db


def test_an_annotator_on_a_staff_page_gets_a_readable_403_and_no_error_in_the_log(alice_client, caplog):
    with caplog.at_level(logging.WARNING):
        response = alice_client.get(reverse("rewardmodel:run_list"))

    page = response.content.decode()
    assert response.status_code == 403
    assert "Error 403" in page and "You cannot open this page" in page
    assert "Only staff can see this page." in page and "logged in as alice" in page
    assert f'href="{reverse("home")}"' in page and 'class="topbar"' in page  # the site's layout, a way home
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "an expected denial is not a warning"


def test_with_info_logging_a_denial_is_one_line_without_a_traceback(alice_client, caplog):
    with caplog.at_level(logging.INFO, logger="django.request"):
        alice_client.get(reverse("rewardmodel:run_list"))
    denials = [r for r in caplog.records if r.name == "django.request"]
    assert len(denials) == 1
    assert denials[0].levelno == logging.INFO and denials[0].exc_info is None
    assert "Only staff can see this page." in denials[0].getMessage()


def test_a_missing_page_gets_a_readable_404(charlie_client):
    response = charlie_client.get("/no/such/page/")
    page = response.content.decode()
    assert response.status_code == 404
    assert "Error 404" in page and "This page does not exist" in page and "/no/such/page/" in page
    assert "Resolver404" not in page and f'href="{reverse("home")}"' in page

    response = charlie_client.get(reverse("rewardmodel:run_detail", args=[999_999]))
    assert response.status_code == 404 and "Error 404" in response.content.decode()


def test_with_debug_on_a_missing_page_gets_the_styled_404_too(charlie_client, settings):
    """bin/run runs with DEBUG on, where Django would list every URL pattern instead."""
    settings.DEBUG = True
    response = charlie_client.get("/no/such/page/")
    page = response.content.decode()
    assert response.status_code == 404
    assert "Error 404" in page and "/no/such/page/" in page and "Using the URLconf" not in page
    response = charlie_client.get(reverse("rewardmodel:run_detail", args=[999_999]))
    assert response.status_code == 404 and "Error 404" in response.content.decode()
    response = charlie_client.get("/dashboard/reward")  # no slash: still redirected to the page that exists
    assert response.status_code == 301 and response["Location"].endswith("/dashboard/reward/")


def test_a_server_error_page_renders_without_a_request_context():
    response = server_error(RequestFactory().get("/"))
    page = response.content.decode()
    assert response.status_code == 500
    assert "Error 500" in page and "Something went wrong on our side" in page and 'href="/"' in page


def test_api_docs_send_a_visitor_to_the_login_and_show_to_a_signed_in_user(alice_client):
    client = Client()  # alice_client is the `client` fixture, logged in
    browser = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}
    response = client.get("/api/docs/", **browser)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/api/docs/"
    assert alice_client.get("/api/docs/", **browser).status_code == 200
    # API clients as before: a 401 that says how to authenticate.
    assert client.get("/api/docs/").status_code == 401
    assert client.get("/api/docs/", HTTP_AUTHORIZATION="Token nonsense", **browser).status_code == 401


def test_favicon_is_linked_and_favicon_ico_redirects_to_it(charlie_client):
    client = Client()
    login = client.get(reverse("login")).content.decode()
    admin = charlie_client.get(reverse("admin:index")).content.decode()
    assert 'rel="icon"' in login and "favicon.svg" in login
    assert 'rel="icon"' in admin and "favicon.svg" in admin
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
