"""Who gets which items: overlap, abandoned HITs, gold mixing, and concurrency."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from annotate.models import Hit, HitSlot, Judgment, Rating
from annotate.services import AnnotationError, add_time, assign_hit, rate_item, submit_hit
from tests.annotate.factories import make_batch


def annotators(n: int) -> list:
    User = get_user_model()
    return [User.objects.create_user(f"annotator{i}", password="x") for i in range(n)]


def rate_all(hit: Hit, screen_rating: int = Rating.RESPONSE_1_BETTER) -> None:
    for slot in hit.ordered_slots():
        rate_item(hit, slot.position, screen_rating)


def test_hit_holds_samples_per_hit_items_in_order(alice):
    make_batch(samples_per_hit=6)
    hit = assign_hit(alice)
    positions = [s.position for s in hit.ordered_slots()]
    assert positions == [1, 2, 3, 4, 5, 6]
    assert assign_hit(alice) == hit, "the current HIT comes back until it is submitted"


def test_overlap_one_never_hands_an_item_twice(alice, bob):
    make_batch(n_items=8, samples_per_hit=6)
    alice_items = {s.item_id for s in assign_hit(alice).slots.all()}
    bob_items = {s.item_id for s in assign_hit(bob).slots.all()}
    assert len(alice_items) == 6
    assert len(bob_items) == 2
    assert not alice_items & bob_items


def test_overlap_two_gives_each_item_to_two_different_annotators(alice, bob, charlie):
    make_batch(n_items=6, samples_per_hit=6, overlap=2)
    a = {s.item_id for s in assign_hit(alice).slots.all()}
    b = {s.item_id for s in assign_hit(bob).slots.all()}
    assert a == b
    assert assign_hit(charlie) is None, "both slots of every item are taken"


def test_judged_items_are_not_handed_out_again(alice, bob):
    make_batch(n_items=6, samples_per_hit=6)
    hit = assign_hit(alice)
    rate_all(hit)
    submit_hit(hit)
    assert assign_hit(alice) is None
    assert assign_hit(bob) is None, "overlap 1 is reached for every item"


def test_abandoned_hit_gives_its_items_back(alice, bob, settings):
    settings.HIT_TIMEOUT_MINUTES = 30
    make_batch(n_items=6, samples_per_hit=6)
    hit = assign_hit(alice)
    rate_item(hit, 1, Rating.RESPONSE_2_BETTER)
    assert assign_hit(bob) is None
    Hit.objects.filter(pk=hit.pk).update(last_activity_at=timezone.now() - timedelta(minutes=31))
    bob_items = {s.item_id for s in assign_hit(bob).slots.all()}
    judged = Judgment.objects.get(annotator=alice).item_id
    assert len(bob_items) == 5
    assert judged not in bob_items, "the item alice judged keeps her judgment and is done"
    assert Judgment.objects.filter(annotator=alice).count() == 1, "no judgment is lost"


def test_inactive_batches_give_no_work(alice):
    make_batch(active=False)
    assert assign_hit(alice) is None


def test_gold_items_are_mixed_in_at_the_batch_rate(alice, bob):
    batch = make_batch(n_items=12, samples_per_hit=6, gold_rate=0.5)
    batch.items.filter(external_id__in=["0", "1", "2", "3"]).update(gold=Rating.RESPONSE_1_BETTER)
    alice_slots = assign_hit(alice).ordered_slots()
    bob_slots = assign_hit(bob).ordered_slots()
    for slots in (alice_slots, bob_slots):
        assert len(slots) == 6
        assert sum(s.item.gold is not None for s in slots) == 3
    alice_regular = {s.item_id for s in alice_slots if s.item.gold is None}
    bob_regular = {s.item_id for s in bob_slots if s.item.gold is None}
    assert not alice_regular & bob_regular, "gold is shared, regular items still respect overlap"


def test_swapped_rating_is_stored_in_item_orientation(alice):
    make_batch(n_items=6)
    hit = assign_hit(alice)
    HitSlot.objects.filter(hit=hit, position=1).update(swapped=True)
    HitSlot.objects.filter(hit=hit, position=2).update(swapped=False)
    j1 = rate_item(hit, 1, Rating.RESPONSE_1_BETTER, elapsed_ms=1500)
    j2 = rate_item(hit, 2, Rating.RESPONSE_1_SLIGHTLY)
    assert (j1.rating, j1.swapped, j1.chosen, j1.strength) == (Rating.RESPONSE_2_BETTER, True, 2, "clear")
    assert j1.chosen_text == j1.item.response_2
    assert (j2.rating, j2.swapped, j2.chosen, j2.strength) == (Rating.RESPONSE_1_SLIGHTLY, False, 1, "slight")
    assert j1.time_ms == 1500


def test_answer_can_change_until_submitted_and_time_adds_up(alice):
    make_batch(n_items=6)
    hit = assign_hit(alice)
    HitSlot.objects.filter(hit=hit).update(swapped=False)
    rate_item(hit, 1, Rating.RESPONSE_1_BETTER, elapsed_ms=1000)
    rate_item(hit, 1, Rating.RESPONSE_2_SLIGHTLY, elapsed_ms=500)
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.rating == Rating.RESPONSE_2_SLIGHTLY
    assert judgment.time_ms == 1500
    with pytest.raises(AnnotationError, match="5 sample"):
        submit_hit(hit)
    rate_all(hit)
    submit_hit(hit)
    with pytest.raises(AnnotationError, match="submitted"):
        rate_item(hit, 1, Rating.RESPONSE_1_BETTER)
    assert Judgment.objects.filter(annotator=alice).count() == 6


def _ask_concurrently(users) -> list[Hit | None]:
    barrier = threading.Barrier(len(users))
    results: dict[int, Hit | None] = {}
    errors: list[BaseException] = []

    def ask(index, user):
        try:
            barrier.wait()
            results[index] = assign_hit(user)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(i, u)) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return [results[i] for i in range(len(users))]


@pytest.mark.parametrize("overlap", [1, 2])
def test_annotators_asking_at_once_never_share_a_slot(transactional_db, overlap):
    batch = make_batch(n_items=20, samples_per_hit=4, overlap=overlap)
    _ask_concurrently(annotators(8))
    slots = HitSlot.objects.filter(hit__batch=batch)
    per_item = Counter(slots.values_list("item_id", flat=True))
    assert max(per_item.values()) <= overlap
    per_user_item = Counter(slots.values_list("hit__annotator_id", "item_id"))
    assert max(per_user_item.values()) == 1
    assert sum(per_item.values()) >= 16, "locked rows are skipped, not waited on, yet work is handed out"


def test_concurrent_first_round_hands_out_distinct_items(transactional_db):
    make_batch(n_items=40, samples_per_hit=5, overlap=1)
    hits = _ask_concurrently(annotators(8))
    assert all(h is not None for h in hits)
    item_ids = [s.item_id for h in hits for s in h.slots.all()]
    assert len(item_ids) == 40
    assert len(set(item_ids)) == 40


def test_one_annotator_asking_ten_times_at_once_gets_one_hit(transactional_db):
    """Ten "next" requests of one annotator at the same moment all get the same HIT (a row lock on the user)."""
    batch = make_batch(n_items=60, samples_per_hit=6, overlap=1)
    (annotator,) = annotators(1)
    hits = _ask_concurrently([annotator] * 10)
    assert {hit.pk for hit in hits} == {hits[0].pk}
    assert Hit.objects.filter(annotator=annotator, batch=batch).count() == 1
    assert HitSlot.objects.filter(hit__annotator=annotator).count() == 6


def _idle(hit: Hit, minutes: int) -> None:
    Hit.objects.filter(pk=hit.pk).update(last_activity_at=timezone.now() - timedelta(minutes=minutes))


def test_a_sample_given_back_after_the_timeout_cannot_be_rated(alice, bob, settings):
    """Alice's idle HIT lost its items to Bob: her late ratings would put them over their overlap."""
    settings.HIT_TIMEOUT_MINUTES = 30
    make_batch(n_items=3, samples_per_hit=3, overlap=1)
    alice_hit = assign_hit(alice)
    _idle(alice_hit, 31)
    bob_hit = assign_hit(bob)
    assert len(bob_hit.ordered_slots()) == 3
    for position in (1, 2, 3):
        with pytest.raises(AnnotationError, match=f"Sample {position} was given back"):
            rate_item(alice_hit, position, Rating.RESPONSE_2_BETTER)
    rate_all(bob_hit)
    submit_hit(bob_hit)
    per_item = Counter(Judgment.objects.values_list("item_id", flat=True))
    assert set(per_item.values()) == {1}, "no item ends over its overlap"
    assert submit_hit(alice_hit).is_submitted, "samples given back do not hold up the rest"


def test_an_idle_hit_keeps_a_sample_that_is_still_free(alice, bob, settings):
    settings.HIT_TIMEOUT_MINUTES = 30
    make_batch(n_items=3, samples_per_hit=3, overlap=1)
    alice_hit = assign_hit(alice)
    _idle(alice_hit, 31)
    bob_hit = assign_hit(bob)
    HitSlot.objects.filter(hit=bob_hit, position=1).delete()  # Bob holds two of the three
    bob_items = {slot.item_id for slot in bob_hit.ordered_slots()}
    free = [slot for slot in alice_hit.ordered_slots() if slot.item_id not in bob_items]
    given_back = [slot for slot in alice_hit.ordered_slots() if slot.item_id in bob_items]
    assert len(free) == 1 and len(given_back) == 2
    judgment = rate_item(alice_hit, free[0].position, Rating.RESPONSE_2_BETTER)
    assert judgment.annotator == alice, "the rating is kept"
    assert Hit.objects.live().filter(pk=alice_hit.pk).exists(), "and the HIT is live again"
    with pytest.raises(AnnotationError, match="given back"):
        rate_item(alice_hit, given_back[0].position, Rating.RESPONSE_2_BETTER)
    assert submit_hit(alice_hit).is_submitted


def test_time_per_item_is_capped_and_never_overflows(alice, settings):
    """1,200 reports of 30 minutes once overflowed a 32-bit column; now the item's total stops at the cap."""
    settings.MAX_ITEM_SECONDS = 1800
    make_batch(n_items=6)
    hit = assign_hit(alice)
    thirty_minutes = 30 * 60 * 1000
    rate_item(hit, 1, Rating.RESPONSE_2_BETTER, elapsed_ms=thirty_minutes)
    for _ in range(3):
        add_time(hit, 1, thirty_minutes)
    rate_item(hit, 1, Rating.RESPONSE_1_BETTER, elapsed_ms=10**30)
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.time_ms == 1800 * 1000
    # A total already past 32 bits (as the overflow left rows) does not stop a rating either.
    Judgment.objects.filter(pk=judgment.pk).update(time_ms=2**33)
    assert rate_item(hit, 1, Rating.RESPONSE_2_SLIGHTLY, elapsed_ms=5).time_ms == 1800 * 1000


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's (SQLite locks the file)")
def test_rating_and_submitting_lock_the_hit_row_only(alice):
    """Locking the HIT's batch row too made every rating of a batch wait for every other and deadlock against
    assignment (bench/bench_concurrency.py: 451 deadlocked calls at overlap 3 before, 0 after)."""
    from django.test.utils import CaptureQueriesContext

    make_batch(n_items=2, samples_per_hit=2)
    hit = assign_hit(alice)
    with CaptureQueriesContext(connection) as queries:
        rate_all(hit)
        submit_hit(hit)
    locks = [q["sql"] for q in queries if "FOR UPDATE" in q["sql"] and '"annotate_hit"' in q["sql"].split("FROM")[1]]
    assert locks, "rating and submitting lock the HIT"
    assert all('FOR UPDATE OF "annotate_hit"' in sql for sql in locks), locks
