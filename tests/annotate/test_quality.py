"""Quality figures checked against small cases worked out by hand."""

from __future__ import annotations

import pytest
from django.conf import settings

from annotate.models import Batch, Item, Judgment
from annotate.quality import (
    annotator_quality,
    batch_quality,
    flagged_annotators,
    ordinal_alpha,
    pairwise_agreement,
)

pytestmark = pytest.mark.django_db


def make_item(batch: Batch, external_id: str, response_1: str = "one", response_2: str = "two", **fields) -> Item:
    return Item.objects.create(
        batch=batch,
        external_id=external_id,
        prompt=[{"role": "user", "content": "Which is better?"}],
        response_1=response_1,
        response_2=response_2,
        **fields,
    )


def judge(item: Item, user, rating: int, time_ms: int = 10_000, swapped: bool = False) -> Judgment:
    return Judgment.objects.create(item=item, annotator=user, rating=rating, time_ms=time_ms, swapped=swapped)


def figures(username: str, batches=None):
    return next(a for a in annotator_quality(batches) if a.username == username)


@pytest.fixture
def import_user(django_user_model):
    return django_user_model.objects.create_user(username=settings.IMPORT_USERNAME, is_active=False)


def test_ordinal_alpha_matches_a_hand_computation():
    """Items (2,2), (2,1), (-1,-2). Marginals n(-2)=n(-1)=n(1)=1, n(2)=3, n=6.

    Ordinal distances d(c,k) = (sum of n_g from c to k - (n_c + n_k)/2)^2:
    d(1,2) = 4, d(-2,-1) = 1, d(-2,1) = 4, d(-2,2) = 16, d(-1,1) = 1, d(-1,2) = 9.
    Observed D_o = (4 + 4 + 1 + 1) / 6 = 10/6 (pairs inside items, both orders).
    Expected D_e = 2 * (1 + 4 + 3*16 + 1 + 3*9 + 3*4) / (6 * 5) = 186/30.
    alpha = 1 - D_o / D_e = 1 - 25/93 = 68/93.
    """
    assert ordinal_alpha([[2, 2], [2, 1], [-1, -2]]) == pytest.approx(68 / 93)
    assert ordinal_alpha([[2, 2], [-1, -1], [1, 1]]) == pytest.approx(1.0)
    assert ordinal_alpha([[2], [1]]) is None  # nothing judged twice
    assert ordinal_alpha([[2, 2], [2, 2]]) is None  # one value throughout: undefined


def test_pairwise_agreement_counts_pairs_on_each_item():
    # (2,2): 1 of 1 pair agrees; (2,-1): 0 of 1; (1,2,-2): 1 of 3 -> 2 of 5
    assert pairwise_agreement([[2, 2], [2, -1], [1, 2, -2]]) == (2, 5)
    assert pairwise_agreement([[2]]) == (0, 0)


def test_batch_figures_leave_out_the_import_user(alice, bob, charlie, import_user):
    batch = Batch.objects.create(name="b", overlap=2)
    i1, i2, i3, i4 = (make_item(batch, f"i{n}", gold=2) for n in range(1, 5))
    judge(i1, alice, 2)
    judge(i1, bob, 2)
    judge(i2, alice, 2)
    judge(i2, bob, 1)
    judge(i3, alice, -1)
    judge(i3, bob, -2)
    judge(i4, charlie, 1)
    for item in (i1, i2, i3, i4):
        judge(item, import_user, -2)  # would break agreement if counted

    quality = batch_quality(batch)
    assert (quality.items, quality.judged_items, quality.fully_judged, quality.judgments) == (4, 4, 3, 7)
    assert quality.overlap_reached == 0.75
    assert (quality.agreeing_pairs, quality.pairs, quality.agreement) == (3, 3, 1.0)
    assert quality.alpha == pytest.approx(68 / 93)
    assert [a.username for a in quality.annotators] == ["alice", "bob", "charlie"]


def test_agreement_with_the_majority_of_the_others(alice, bob, charlie):
    batch = Batch.objects.create(name="b", overlap=3)
    i1, i2, i3, i4 = (make_item(batch, f"i{n}") for n in range(1, 5))
    for user, rating in ((alice, 2), (bob, 1), (charlie, 2)):
        judge(i1, user, rating)  # all agree
    for user, rating in ((alice, -2), (bob, 2), (charlie, 1)):
        judge(i2, user, rating)  # alice against bob+charlie; for bob and charlie the others tie
    judge(i3, alice, 1)
    judge(i3, bob, -1)
    judge(i4, alice, 2)  # nobody else: not comparable

    alice_q, bob_q, charlie_q = (figures(name) for name in ("alice", "bob", "charlie"))
    assert (alice_q.comparable, alice_q.agreement) == (3, pytest.approx(1 / 3))
    assert (bob_q.comparable, bob_q.agreement) == (2, 0.5)
    assert (charlie_q.comparable, charlie_q.agreement) == (1, 1.0)
    assert batch_quality(batch).agreement == pytest.approx(4 / 7)


def test_position_length_and_slight_figures_on_constructed_judgments(alice):
    """alice always picks the longer response 1; it was shown first on 8 of 10 items."""
    batch = Batch.objects.create(name="bias")
    for n in range(10):
        item = make_item(batch, str(n), response_1="a long and detailed answer", response_2="short")
        judge(item, alice, -1 if n < 3 else -2, time_ms=(n + 2) * 1000, swapped=n >= 8)
    quality = figures("alice")
    assert quality.judgments == 10
    assert quality.first_shown_share == 0.8
    # two-sided binomial test of 8 in 10 against 1/2: 2 * (45 + 10 + 1) / 1024
    assert quality.first_shown_p_value == pytest.approx(112 / 1024)
    assert (quality.longer_share, quality.length_comparable) == (1.0, 10)
    assert quality.slight_share == 0.3
    assert quality.median_seconds == 6.5  # median of 2..11 s
    assert quality.flags == []


def test_gold_accuracy_counts_only_items_with_a_known_answer(alice):
    batch = Batch.objects.create(name="gold")
    for n in range(6):
        item = make_item(batch, f"g{n}", gold=2 if n % 2 else -1)  # the answer: 1 (even n) or 2 (odd n)
        judge(item, alice, 1 if n < 4 else -2)  # right on 1, 3 and 4
    judge(make_item(batch, "no-gold"), alice, 2)
    quality = figures("alice")
    assert (quality.gold_judgments, quality.gold_accuracy) == (6, 0.5)
    assert quality.flags == ["gold accuracy 50% < 60%"]
    assert flagged_annotators() == {alice.pk: ["gold accuracy 50% < 60%"]}
    assert figures("alice").judgments == 7


def test_gold_flag_needs_five_gold_judgments(alice):
    batch = Batch.objects.create(name="gold")
    for n in range(4):
        judge(make_item(batch, f"g{n}", gold=2), alice, -2)
    assert figures("alice").gold_accuracy == 0.0
    assert flagged_annotators() == {}


def test_agreement_flag_needs_ten_comparable_judgments(alice, bob, charlie):
    batch = Batch.objects.create(name="agree", overlap=3)
    for n in range(10):
        item = make_item(batch, str(n))
        judge(item, bob, 2)
        judge(item, charlie, 1)
        if n < 9:
            judge(item, alice, -2)
    assert figures("alice").comparable == 9
    assert flagged_annotators() == {}
    judge(Item.objects.get(batch=batch, external_id="9"), alice, -1)
    assert flagged_annotators() == {alice.pk: ["agreement with others 0% < 50%"]}


def test_too_fast_annotators_are_flagged_per_batch(alice, bob):
    fast, slow = Batch.objects.create(name="fast"), Batch.objects.create(name="slow")
    for n, ms in enumerate((1000, 2500, 9000)):
        judge(make_item(fast, str(n)), alice, 2, time_ms=ms)
        judge(make_item(slow, str(n)), alice, 2, time_ms=ms + 30_000)
        judge(Item.objects.get(batch=fast, external_id=str(n)), bob, 2, time_ms=3000)
    assert flagged_annotators(["fast"]) == {alice.pk: ["median 2.5 s per item < 3 s"]}
    assert flagged_annotators([slow]) == {}
    assert flagged_annotators() == {}  # over all batches: median of 1, 2.5, 9, 31, 32.5, 39 s is 20 s
