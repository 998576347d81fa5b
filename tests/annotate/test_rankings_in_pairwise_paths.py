"""Ranking judgments (rating None) beside pairwise ones: the pairwise code paths skip them instead of crashing."""

from __future__ import annotations

import pytest

from annotate.models import Batch, Item, Judgment
from policy.data import batch_demonstrations
from rewardmodel.services import pairs_from_judgments
from tests.annotate.factories import make_ranking_batch

pytestmark = pytest.mark.django_db


def test_reward_pairs_take_rankings_as_weighted_pairs_and_demonstrations_skip_them(alice, bob):
    ranking_item = make_ranking_batch("r", n_items=1, size=3).items.get()
    Judgment.objects.create(item=ranking_item, annotator=alice, ranking=[[1], [2], [3]])
    batch = Batch.objects.create(name="mixed")
    item = Item.objects.create(
        batch=batch, external_id="1", prompt=[{"role": "user", "content": "q"}], response_1="a", response_2="b"
    )
    Judgment.objects.create(item=item, annotator=bob, rating=2)
    ranking_in_mixed = Item.objects.create(
        batch=batch,
        external_id="2",
        prompt=[{"role": "user", "content": "q"}],
        response_1="a",
        response_2="b",
        more_responses=["c"],
    )
    Judgment.objects.create(item=ranking_in_mixed, annotator=bob, ranking=[[2], [1], [3]])
    for aggregate in ("each", "majority", "agreed"):
        pairs = pairs_from_judgments(Judgment.objects.select_related("item").order_by("pk"), aggregate)
        # The rating gives one pair of weight 1; each ranking of 3 its C(3,2) = 3 pairs of weight 1/3.
        assert sorted(round(pair.weight, 3) for pair in pairs) == [0.333] * 6 + [1.0]
    assert batch_demonstrations(batch) == [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]]
