"""The next-comparison rule: least sure first, with an exploration share of random items."""

import random

import pytest

from rlhf.active import smallest_gap, uncertainty_order


def test_without_exploration_the_least_sure_items_come_first_whatever_the_sign():
    margins = [2.0, -0.1, 0.5, -3.0, 0.1, 0.0]
    # |margin| 0.0, 0.1 (index 1 before index 4: ties go to the lower index), 0.5, 2.0, 3.0
    assert uncertainty_order(margins, 0.0, random.Random(0)) == [5, 1, 4, 2, 0, 3]


def test_every_item_is_handed_out_exactly_once():
    margins = [random.Random(1).uniform(-5, 5) for _ in range(500)]
    for exploration in (0.0, 0.2, 0.5, 1.0):
        order = uncertainty_order(margins, exploration, random.Random(2))
        assert sorted(order) == list(range(500))


def test_full_exploration_is_a_random_order_and_the_seed_repeats_it():
    margins = list(range(200))  # sorted already: uncertainty order would be 0, 1, 2, …
    order = uncertainty_order(margins, 1.0, random.Random(3))
    assert order != margins
    assert order == uncertainty_order(margins, 1.0, random.Random(3))


def test_exploration_share_is_respected_within_binomial_noise():
    # Margins equal to the index: the uncertain picks of the first 1,000 positions are all below 1,000, while a
    # random pick from 100,000 items lands at or above 1,000 with probability 0.99. So the count of those is
    # Binomial(1000, 0.2 * 0.99): mean 198, sd 12.6; allow 4 sd.
    margins = [float(i) for i in range(100_000)]
    order = uncertainty_order(margins, 0.2, random.Random(4))
    explored = sum(1 for index in order[:1000] if index >= 1000)
    assert abs(explored - 198) < 4 * 12.6


def test_bad_exploration_or_margin_is_refused_with_its_name():
    with pytest.raises(ValueError, match="exploration must be between 0 and 1, got 1.5"):
        uncertainty_order([0.0], 1.5, random.Random(0))
    with pytest.raises(ValueError, match="margin 1 must be a finite number, got nan"):
        uncertainty_order([0.0, float("nan")], 0.2, random.Random(0))


def test_empty_pool_gives_an_empty_order():
    assert uncertainty_order([], 0.2, random.Random(0)) == []


def test_smallest_gap_of_a_ranking_item_is_between_its_closest_neighbours():
    assert smallest_gap([3.0, 0.0, 2.5, 1.0]) == pytest.approx(0.5)
    assert smallest_gap([1.0, -1.0]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least 2 responses, got 1"):
        smallest_gap([1.0])
