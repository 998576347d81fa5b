"""The next-comparison rule (rlhf.active): unscored, then least sure first, with exploration places from a random id."""

import random

import pytest

from rlhf.active import exploration_places, hand_out, smallest_gap


def test_without_exploration_unscored_then_least_sure_items_come_first():
    uncertainty = [2.0, 0.1, 0.5, None, 0.1, 0.0]
    # None first, then 0.0, 0.1 (id 1 before id 4: ties go to the lower id), 0.5
    assert hand_out(uncertainty, range(6), 5, 0.0, random.Random(0)) == [3, 5, 1, 4, 2]


def test_only_candidates_are_handed_out_and_never_more_than_wanted():
    uncertainty = [float(i) for i in range(50)]
    candidates = list(range(0, 50, 3))
    for exploration in (0.0, 0.2, 1.0):
        picked = hand_out(uncertainty, candidates, 10, exploration, random.Random(2))
        assert len(picked) == len(set(picked)) == 10
        assert set(picked) <= set(candidates)
    assert sorted(hand_out(uncertainty, [4, 7], 10, 0.5, random.Random(2))) == [4, 7]


def test_full_exploration_takes_consecutive_ids_from_a_random_start_wrapping_round():
    uncertainty = [float(i) for i in range(100)]  # uncertainty order would be 0, 1, 2, ...
    picked = hand_out(uncertainty, range(100), 10, 1.0, random.Random(3))
    start = picked[0]
    assert start != 0
    assert picked == [(start + k) % 100 for k in range(10)]
    assert picked == hand_out(uncertainty, range(100), 10, 1.0, random.Random(3)), "the seed repeats it"


def test_exploration_places_follow_the_share():
    rng = random.Random(7)
    places = 20_000
    drawn = sum(exploration_places(10, 0.2, rng) for _ in range(places // 10))
    sd = (places * 0.2 * 0.8) ** 0.5
    assert abs(drawn - 0.2 * places) < 4 * sd
    assert exploration_places(10, 0.0, rng) == 0 and exploration_places(10, 1.0, rng) == 10


def test_bad_exploration_or_uncertainty_is_refused_with_its_name():
    with pytest.raises(ValueError, match="exploration must be between 0 and 1, got 1.5"):
        hand_out([0.0], [0], 1, 1.5, random.Random(0))
    with pytest.raises(ValueError, match="uncertainty 1 must be a finite number, got nan"):
        hand_out([0.0, float("nan")], [0, 1], 1, 0.2, random.Random(0))


def test_empty_pool_gives_nothing():
    assert hand_out([], [], 5, 0.2, random.Random(0)) == []


def test_smallest_gap_of_a_ranking_item_is_between_its_closest_neighbours():
    assert smallest_gap([3.0, 0.0, 2.5, 1.0]) == pytest.approx(0.5)
    assert smallest_gap([1.0, -1.0]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least 2 responses, got 1"):
        smallest_gap([1.0])
