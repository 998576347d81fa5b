"""Shared fixtures: the named test users of every story.

alice and bob annotate; charlie is staff in the admin group (every permission). For the staff roles: `curator` and
`researcher` are staff in those groups (runs/roles.py), and `bare_staff` is staff with no permission at all.
"""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from runs.roles import ADMIN, CURATOR, RESEARCHER, sync_role_groups

pytest_plugins = ["tests.worker"]

PASSWORD = "password"


@pytest.fixture(autouse=True)
def temporary_model_root(settings, tmp_path_factory):
    """Tiny test models are built in pytest's temporary folder: a model root, like var/artifacts in production."""
    settings.MODEL_ROOTS = [*settings.MODEL_ROOTS, tmp_path_factory.getbasetemp()]


@pytest.fixture(autouse=True)
def fresh_rendered_markdown_memory():
    """Each test starts with no rendered HTML in the process's memory, as its database starts with none stored."""
    from annotate import rendering

    rendering.forget_recent()


def _user(username: str, **extra):
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)


@pytest.fixture
def alice(db):
    return _user("alice")


@pytest.fixture
def bob(db):
    return _user("bob")


def _staff(username: str, role: str | None = None):
    user = _user(username, is_staff=True)
    if role is not None:
        sync_role_groups()  # a test that flushed the database took the migration's groups with it
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def charlie(db):
    """Staff in the admin group, not a superuser: the group must be enough for everything."""
    return _staff("charlie", ADMIN)


@pytest.fixture
def curator(db):
    return _staff("curator", CURATOR)


@pytest.fixture
def researcher(db):
    return _staff("researcher", RESEARCHER)


@pytest.fixture
def bare_staff(db):
    """Staff status and nothing else: refused every staff page and endpoint."""
    return _staff("bare")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def charlie_client(client, charlie):
    client.force_login(charlie)
    return client
