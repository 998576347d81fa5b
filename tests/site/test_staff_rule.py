"""Who is staff: one rule (runs.permissions.is_staff_member) for the views, the API and the templates."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.mark.django_db
def test_a_superuser_without_the_staff_flag_gets_the_staff_pages_everywhere():
    """The permission checks counted superusers as staff while the templates read user.is_staff: the nav was hidden."""
    root = get_user_model().objects.create_user("root", password="pw", is_staff=False, is_superuser=True)
    client = Client()
    client.force_login(root)
    home = client.get("/").content.decode()
    assert 'class="staff-nav"' in home
    assert client.get("/dashboard/queue/").status_code == 200


@pytest.mark.django_db
def test_a_plain_user_gets_no_staff_nav():
    plain = get_user_model().objects.create_user("plain", password="pw")
    client = Client()
    client.force_login(plain)
    assert 'class="staff-nav"' not in client.get("/").content.decode()
