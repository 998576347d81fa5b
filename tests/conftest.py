"""Shared fixtures: the named test users of every story.

alice and bob annotate; charlie is staff.
"""

import pytest
from django.contrib.auth import get_user_model

pytest_plugins = ["tests.worker"]

PASSWORD = "password"


@pytest.fixture(autouse=True)
def temporary_model_root(settings, tmp_path_factory):
    """Tiny test models are built in pytest's temporary folder: a model root, like var/artifacts in production."""
    settings.MODEL_ROOTS = [*settings.MODEL_ROOTS, tmp_path_factory.getbasetemp()]


def _user(username: str, **extra):
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)


@pytest.fixture
def alice(db):
    return _user("alice")


@pytest.fixture
def bob(db):
    return _user("bob")


@pytest.fixture
def charlie(db):
    return _user("charlie", is_staff=True, is_superuser=True)


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def charlie_client(client, charlie):
    client.force_login(charlie)
    return client
