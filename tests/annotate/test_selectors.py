"""The HIT page and the API draw a sample from the same read model: same texts, same sides, same rating."""

from __future__ import annotations

import dataclasses
import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Batch, Hit, Item, Rating
from annotate.rendering import render_markdown
from annotate.selectors import hit_progress, screen_sample_at, screen_samples
from annotate.services import assign_hit, rate_item


@pytest.fixture
def hit(alice) -> Hit:
    """Alice's HIT of two dialogues with an input; sample 1 on its own sides, sample 2 swapped and rated."""
    batch = Batch.objects.create(name="screen", samples_per_hit=2)
    for i in (1, 2):
        Item.objects.create(
            batch=batch,
            external_id=str(i),
            prompt=[
                {"role": "user", "content": f"Hello {i}"},
                {"role": "assistant", "content": f"Hi, how can I help? {i}"},
                {"role": "user", "content": f"Summarise text {i}"},
            ],
            prompt_input=f"The *text* {i}",
            response_1=f"item response one {i}",
            response_2=f"item response two {i}",
        )
    hit = assign_hit(alice)
    hit.slots.filter(position=1).update(swapped=False)
    hit.slots.filter(position=2).update(swapped=True)
    # On screen "AI Response 1 is slightly better", which is the item's response 2.
    rate_item(hit, 2, Rating.RESPONSE_1_SLIGHTLY, 700)
    return hit


def section(html: str, element_id: str) -> str:
    match = re.search(rf'<section class="block response" id="{element_id}">(.*?)</section>', html, re.S)
    assert match, element_id
    return match.group(1)


def checked_value(html: str) -> int | None:
    match = re.search(r'<input type="radio" name="rating" value="(-?\d)" data-key="\d" checked>', html)
    return int(match.group(1)) if match else None


@pytest.mark.parametrize("position", [1, 2])
def test_page_and_api_show_the_same_sample_for_a_slot(alice, alice_client, hit, position):
    sample = screen_sample_at(hit, position)
    api = APIClient()
    api.force_authenticate(alice)
    shown = api.get(f"/api/hits/{hit.pk}/").json()
    assert shown["samples"][position - 1] == dataclasses.asdict(sample), "the API serializes the selector's sample"
    assert screen_samples(hit)[position - 1] == sample

    html = alice_client.get(f"{reverse('hit', args=[hit.pk])}?sample={position}").content.decode()
    assert render_markdown(sample.response_1) in section(html, "response-1")
    assert render_markdown(sample.response_2) in section(html, "response-2")
    assert render_markdown(sample.instruction) in html and render_markdown(sample.input) in html
    for turn in sample.earlier_turns:
        assert render_markdown(turn["content"]) in html
    assert checked_value(html) == sample.rating == shown["samples"][position - 1]["rating"]

    progress = hit_progress(hit)
    assert shown["completed"] == progress.completed == 1
    assert f"Your annotation progress for this HIT: {progress.completed}/{progress.total} completed." in html


def test_the_selector_draws_swapped_sides_and_ratings_on_screen(hit):
    unswapped, swapped = screen_samples(hit)
    item_1, item_2 = (slot.item for slot in hit.ordered_slots())
    assert (unswapped.response_1, unswapped.response_2) == (item_1.response_1, item_1.response_2)
    assert (swapped.response_1, swapped.response_2) == (item_2.response_2, item_2.response_1)
    assert (unswapped.rating, unswapped.marked) == (None, False)
    assert (swapped.rating, swapped.time_ms, swapped.marked) == (Rating.RESPONSE_1_SLIGHTLY, 700, True)
    assert item_2.judgments.get().rating == Rating.RESPONSE_2_SLIGHTLY, "stored in the item's orientation"


def test_hit_progress_counts_marked_samples_and_finds_the_next_unmarked(hit):
    progress = hit_progress(hit)
    assert progress.marked == {1: False, 2: True}
    assert (progress.total, progress.completed, progress.all_marked) == (2, 1, False)
    assert progress.first_unmarked() == 1
    assert progress.first_unmarked(besides=1) is None, "the sample on screen is not its own next"
    assert progress.first_unmarked(besides=2) == 1, "the first un-marked one in order, before the one on screen"
    rate_item(hit, 1, Rating.RESPONSE_2_BETTER)
    assert hit_progress(hit).all_marked and hit_progress(hit).first_unmarked() is None
