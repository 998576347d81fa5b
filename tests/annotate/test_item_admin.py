"""The admin's item form checks an item as an import checks a record, and an item stored in a bad shape (before that
check) never blocks an annotator: the HIT shows its prompt as text instead of answering 500."""

from __future__ import annotations

import html
import json

import pytest
from rest_framework.test import APIClient

from annotate.models import Item
from tests.annotate.factories import make_batch, make_ranking_batch

pytestmark = pytest.mark.django_db

GOOD_PROMPT = [{"role": "user", "content": "Which is better?"}]


def item_form(batch, **changes) -> dict:
    fields = {
        "batch": str(batch.pk),
        "external_id": "new-item",
        "prompt": json.dumps(GOOD_PROMPT),
        "prompt_input": "",
        "response_1": "one",
        "response_2": "two",
        "more_responses": "[]",
        "source": "{}",
        "gold": "",
        "created_at_0": "2026-12-07",
        "created_at_1": "12:00:00",
    }
    return {**fields, **changes}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt": json.dumps("a plain string")}, "expected a list of {role, content} messages, got a string"),
        ({"prompt": json.dumps([{"role": "assistant", "content": "hi"}])}, "the last message must be the user"),
        ({"prompt": json.dumps([{"role": "user"}])}, "message 1: content must be a string"),
        ({"response_1": "x" * 100_001}, "100,001 characters, more than the limit of 100,000 per text"),
        ({"more_responses": json.dumps(["three"])}, "a pairwise item has exactly two responses"),
        ({"more_responses": json.dumps("three")}, "expected a list of strings, got a string"),
    ],
)
def test_the_admin_item_form_refuses_what_an_import_refuses(charlie_client, changes, message):
    batch = make_batch("pairs", n_items=0)
    page = charlie_client.post("/admin/annotate/item/add/", item_form(batch, **changes))
    assert page.status_code == 200 and message in page.content.decode()
    assert not Item.objects.exists()


def test_the_admin_item_form_checks_a_ranking_item_against_its_batch(charlie_client):
    batch = make_ranking_batch("ranks", n_items=0, size=4)
    page = charlie_client.post("/admin/annotate/item/add/", item_form(batch, more_responses=json.dumps(["three"])))
    assert "3 responses, but the batch ranks 4 per item" in page.content.decode()
    saved = charlie_client.post("/admin/annotate/item/add/", item_form(batch, more_responses=json.dumps(["3", "4"])))
    assert saved.status_code == 302 and Item.objects.get().response_count == 4


def test_the_admin_item_form_saves_a_good_item(charlie_client):
    batch = make_batch("pairs", n_items=0)
    assert charlie_client.post("/admin/annotate/item/add/", item_form(batch)).status_code == 302
    assert Item.objects.get().prompt == GOOD_PROMPT


@pytest.mark.parametrize("stored", ["a plain string", {"not": "messages"}, []])
def test_an_item_stored_in_a_bad_shape_does_not_block_the_annotator(alice, alice_client, stored):
    batch = make_batch("pairs", n_items=1, samples_per_hit=1)
    Item.objects.filter(batch=batch).update(prompt=stored)
    started = alice_client.post("/hit/next/")
    assert started.status_code == 302 and "/hit/" in started["Location"]
    page = alice_client.get(started["Location"])
    assert page.status_code == 200
    text = stored if isinstance(stored, str) else json.dumps(stored)
    assert html.unescape(text) in html.unescape(page.content.decode())
    api = APIClient()
    api.force_authenticate(alice)
    hit = api.post("/api/hits/next/").json()
    assert hit["samples"][0]["instruction"] == text
    rated = alice_client.post(f"{started['Location']}rate/", {"position": "1", "rating": "2"})
    assert rated.status_code in (200, 302)
