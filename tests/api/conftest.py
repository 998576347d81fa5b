"""API fixtures: a client per role, and a batch with alice's HIT half rated."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotate.models import Batch, Hit, Item
from annotate.services import assign_hit


def api_client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def make_batch(name: str = "api-batch", n_items: int = 6, **fields) -> Batch:
    batch = Batch.objects.create(name=name, samples_per_hit=6, **fields)
    Item.objects.bulk_create(
        Item(
            batch=batch,
            external_id=f"q{i}",
            prompt=[{"role": "user", "content": f"Question {i}?"}],
            response_1=f"first answer {i}",
            response_2=f"second answer {i}",
        )
        for i in range(n_items)
    )
    return batch


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The shared user fixtures set passwords; the default hasher costs ~1 s per user on a busy CPU."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def clients(alice, bob, charlie, bare_staff, curator, researcher) -> dict[str, APIClient]:
    return {
        "anonymous": api_client(),
        "alice": api_client(alice),
        "bob": api_client(bob),
        "charlie": api_client(charlie),
        "bare": api_client(bare_staff),
        "curator": api_client(curator),
        "researcher": api_client(researcher),
    }


@pytest.fixture
def batch(db) -> Batch:
    return make_batch()


@pytest.fixture
def alice_hit(alice, batch) -> Hit:
    hit = assign_hit(alice)
    assert hit is not None and hit.slots.count() == 6
    return hit
