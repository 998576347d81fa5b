"""Model-ordered assignment: HITs take unscored, then least certain items first, with a random exploration share,
and overlap, gold mixing and the no-double-assignment guarantee exactly as in import order."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from annotate.models import Batch, HitSlot, Item, Rating
from annotate.services import assign_hit
from rlhf.active import hand_out
from tests.annotate.factories import make_batch
from tests.annotate.test_assignment import _ask_concurrently, annotators


def model_ordered(batch: Batch, share: float = 0.0) -> Batch:
    Batch.objects.filter(pk=batch.pk).update(
        assignment_order=Batch.AssignmentOrder.UNCERTAINTY, exploration_share=share
    )
    batch.refresh_from_db()
    return batch


def set_uncertainty(batch: Batch, values: dict[str, float | None]) -> None:
    for external_id, value in values.items():
        Item.objects.filter(batch=batch, external_id=external_id).update(uncertainty=value)


def handed_out(hit) -> list[str]:
    return [slot.item.external_id for slot in hit.ordered_slots()]


def test_import_order_is_unchanged_by_stored_priorities(alice):
    batch = make_batch(n_items=8, samples_per_hit=4)
    set_uncertainty(batch, {"7": 0.01, "6": 0.02})
    assert handed_out(assign_hit(alice)) == ["0", "1", "2", "3"], "import order ignores the model's priorities"


def test_unscored_then_least_certain_items_come_first(alice, bob):
    batch = model_ordered(make_batch(n_items=8, samples_per_hit=3))
    set_uncertainty(batch, {str(i): 10.0 - i for i in range(8)})  # item 7 is the least certain
    set_uncertainty(batch, {"2": None})  # not scored yet: handed out before any scored item
    assert handed_out(assign_hit(alice)) == ["2", "7", "6"]
    assert handed_out(assign_hit(bob)) == ["5", "4", "3"]


def test_switching_the_order_changes_what_the_next_annotator_gets(alice, bob):
    batch = make_batch(n_items=8, samples_per_hit=2)
    set_uncertainty(batch, {str(i): 10.0 - i for i in range(8)})
    assert handed_out(assign_hit(alice)) == ["0", "1"]
    model_ordered(batch)
    assert handed_out(assign_hit(bob)) == ["7", "6"]


def test_an_empty_model_ordered_batch_is_skipped(alice):
    model_ordered(Batch.objects.create(name="empty", priority=5), share=0.5)
    later = make_batch(n_items=3, samples_per_hit=3)
    assert assign_hit(alice).batch == later


def test_overlap_is_kept_in_model_order(alice, bob, charlie):
    batch = model_ordered(make_batch(n_items=6, samples_per_hit=3, overlap=2))
    set_uncertainty(batch, {str(i): 10.0 - i for i in range(6)})
    first, second, third = (set(handed_out(assign_hit(user))) for user in (alice, bob, charlie))
    assert first == second == {"5", "4", "3"}, "both places of the least certain items go first"
    assert third == {"2", "1", "0"}


def test_gold_is_mixed_in_at_the_batch_rate_in_model_order(alice, bob):
    batch = model_ordered(make_batch(n_items=16, samples_per_hit=6, gold_rate=0.5))
    batch.items.filter(external_id__in=["0", "1", "2", "3"]).update(gold=Rating.RESPONSE_1_BETTER)
    set_uncertainty(batch, {str(i): 100.0 - i for i in range(16)})
    alice_slots, bob_slots = assign_hit(alice).ordered_slots(), assign_hit(bob).ordered_slots()
    for slots in (alice_slots, bob_slots):
        assert sum(slot.item.gold is not None for slot in slots) == 3
    alice_regular = {s.item.external_id for s in alice_slots if s.item.gold is None}
    bob_regular = {s.item.external_id for s in bob_slots if s.item.gold is None}
    assert alice_regular == {"15", "14", "13"} and bob_regular == {"12", "11", "10"}


@pytest.mark.parametrize("overlap", [1, 2])
def test_annotators_asking_at_once_never_share_a_slot_in_model_order(transactional_db, overlap):
    """The 8-thread test of test_assignment.py, on a model-ordered batch that explores half the time."""
    batch = model_ordered(make_batch(n_items=20, samples_per_hit=4, overlap=overlap), share=0.5)
    set_uncertainty(batch, {str(i): float(i % 7) for i in range(20)})
    _ask_concurrently(annotators(8))
    slots = HitSlot.objects.filter(hit__batch=batch)
    per_item = Counter(slots.values_list("item_id", flat=True))
    assert max(per_item.values()) <= overlap
    per_user_item = Counter(slots.values_list("hit__annotator_id", "item_id"))
    assert max(per_user_item.values()) == 1
    assert sum(per_item.values()) >= 16, "locked rows are skipped, not waited on, yet work is handed out"


def test_concurrent_first_round_hands_out_distinct_items_in_model_order(transactional_db):
    batch = model_ordered(make_batch(n_items=40, samples_per_hit=5, overlap=1), share=0.2)
    set_uncertainty(batch, {str(i): float(i % 5) for i in range(40)})
    hits = _ask_concurrently(annotators(8))
    assert all(h is not None for h in hits)
    item_ids = [s.item_id for h in hits for s in h.slots.all()]
    assert len(item_ids) == len(set(item_ids)) == 40


def test_the_app_hands_out_what_the_rule_on_lists_picks(db, alice):
    """bench/curve_active.py simulates with rlhf.active.hand_out: the app picks the same items from the same draws."""
    batch = model_ordered(make_batch(n_items=60, samples_per_hit=6, overlap=1), share=0.5)
    items = list(Item.objects.filter(batch=batch).order_by("pk"))
    assert [item.pk - items[0].pk for item in items] == list(range(60)), "ids are consecutive: index = pk - first"
    scores = random.Random(1)
    uncertainty = [None if index % 7 == 0 else round(scores.uniform(0, 3), 3) for index in range(60)]
    for item, value in zip(items, uncertainty, strict=True):
        item.uncertainty = value
    Item.objects.bulk_update(items, ["uncertainty"])
    left = list(range(60))
    for seed, user in enumerate(annotators(8)):
        random.seed(seed)
        app = [slot.item_id - items[0].pk for slot in assign_hit(user).ordered_slots()]
        rule = hand_out(uncertainty, left, 6, 0.5, random.Random(seed))
        assert sorted(app) == sorted(rule), f"annotator {seed}"
        left = [index for index in left if index not in rule]


def test_handed_out_items_explore_at_the_share_within_binomial_noise(db):
    """5000 items, least certain = lowest external id. After 200 items, the ones ranked past 200 came from exploration
    (a random place lands in the first 200 only 4 % of the time)."""
    random.seed(11)
    batch = model_ordered(make_batch(n_items=5000, samples_per_hit=10), share=0.2)
    items = list(Item.objects.filter(batch=batch).only("pk", "external_id"))
    for item in items:
        item.uncertainty = float(item.external_id)
    Item.objects.bulk_update(items, ["uncertainty"], batch_size=1000)
    users = annotators(20)
    ranks = [int(external_id) for user in users for external_id in handed_out(assign_hit(user))]
    assert len(ranks) == len(set(ranks)) == 200
    explored = sum(rank >= 200 for rank in ranks)
    expected, sd = 200 * 0.2 * 0.96, (200 * 0.2 * 0.8) ** 0.5
    assert abs(explored - expected) < 4 * sd, explored
