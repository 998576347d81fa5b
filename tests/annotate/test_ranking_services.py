"""Ranking samples in a HIT: shuffled display, partial orders kept, complete orders stored in the item's order."""

import pytest

from annotate.models import Judgment, Rating
from annotate.selectors import hit_progress
from annotate.services import AnnotationError, assign_hit, rank_item, rate_item, submit_hit
from tests.annotate.factories import make_ranking_batch

pytestmark = pytest.mark.django_db


def test_each_ranking_slot_shows_all_k_responses_in_a_shuffled_order(alice):
    make_ranking_batch(n_items=6, size=4, samples_per_hit=6)
    hit = assign_hit(alice)
    orders = [slot.display_order for slot in hit.ordered_slots()]
    assert all(sorted(order) == [1, 2, 3, 4] for order in orders)
    assert len({tuple(order) for order in orders}) > 1, "six items shown in one order: not shuffled"


def test_a_complete_order_is_stored_in_the_item_orientation(alice):
    make_ranking_batch(n_items=2, size=4, samples_per_hit=2)
    hit = assign_hit(alice)
    slot = hit.ordered_slots()[0]
    judgment = rank_item(hit, 1, [[2], [4], [1], [3]], elapsed_ms=1500)
    shown = slot.display_order
    assert judgment.ranking == [[shown[1]], [shown[3]], [shown[0]], [shown[2]]]
    assert judgment.display_order == shown and judgment.rating is None and judgment.time_ms == 1500
    assert slot.item.response(judgment.ranking[0][0]) == slot.shown_responses()[1][1], "best is what B showed"


def test_a_partial_order_is_kept_and_the_last_letter_is_implied(alice):
    make_ranking_batch(n_items=1, size=4, samples_per_hit=1)
    hit = assign_hit(alice)
    assert rank_item(hit, 1, [[3], [1]]) is None
    assert hit.slots.get().draft_ranking == [[3], [1]]
    assert not hit_progress(hit).all_marked
    judgment = rank_item(hit, 1, [[3], [1], [4]])
    assert len(judgment.ranking) == 4, "the one response left is ranked last"
    assert hit.slots.get().draft_ranking is None
    assert hit_progress(hit).all_marked
    # Unpicking the order keeps the saved judgment until a new complete order replaces it.
    rank_item(hit, 1, [[3]])
    assert Judgment.objects.get().ranking == judgment.ranking
    submit_hit(hit)


@pytest.mark.parametrize(
    ("tiers", "message"),
    [([[1], [1]], "twice"), ([[5]], "between 1 and 4"), ([[1, 2], [3]], "ties are not allowed"), ("AB", "list")],
)
def test_bad_orders_are_refused_and_named(alice, tiers, message):
    make_ranking_batch(n_items=1, size=4, samples_per_hit=1)
    hit = assign_hit(alice)
    with pytest.raises(AnnotationError, match=message) as caught:
        rank_item(hit, 1, tiers)
    assert caught.value.field == "ranking"
    assert not Judgment.objects.exists()


def test_ties_only_where_the_batch_allows_them(alice):
    make_ranking_batch(n_items=1, size=3, samples_per_hit=1, allow_ties=True)
    hit = assign_hit(alice)
    judgment = rank_item(hit, 1, [[1, 2], [3]])
    assert sorted(judgment.ranking[0]) == sorted(hit.slots.get().display_order[:2])


def test_a_ranking_sample_cannot_be_rated_on_the_pairwise_scale(alice):
    make_ranking_batch(n_items=1, size=3, samples_per_hit=1)
    hit = assign_hit(alice)
    with pytest.raises(AnnotationError, match="is a ranking"):
        rate_item(hit, 1, Rating.RESPONSE_1_BETTER)


def test_submitting_a_ranking_hit_early_names_the_orders_missing(alice):
    make_ranking_batch(n_items=2, size=3, samples_per_hit=2)
    hit = assign_hit(alice)
    rank_item(hit, 1, [[1], [2]])
    with pytest.raises(AnnotationError, match="1 sample still needs a complete order"):
        submit_hit(hit)
