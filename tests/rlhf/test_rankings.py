"""Rankings as pairs, Borda aggregation, Kendall's tau and Krippendorff's alpha, on hand-computed cases."""

import math
import random

import pytest

from rlhf.rankings import (
    RankingError,
    borda,
    check_tiers,
    item_rankings,
    kendall_tau,
    krippendorff_alpha_ranks,
    letters_of,
    pairs_of,
    ranks_of,
    tiers_from_scores,
    to_item_tiers,
    to_screen_tiers,
)


def test_all_pairs_of_a_strict_ranking_weigh_one_over_k_choose_2():
    pairs = pairs_of([[3], [1], [4], [2]], "all")
    assert [(better, worse) for better, worse, _ in pairs] == [(3, 1), (3, 4), (3, 2), (1, 4), (1, 2), (4, 2)]
    assert all(weight == pytest.approx(1 / 6) for _, _, weight in pairs)
    assert sum(weight for _, _, weight in pairs) == pytest.approx(1.0)


def test_adjacent_pairs_are_neighbours_only():
    pairs = pairs_of([[3], [1], [4], [2]], "adjacent")
    assert [(better, worse) for better, worse, _ in pairs] == [(3, 1), (1, 4), (4, 2)]
    assert sum(weight for _, _, weight in pairs) == pytest.approx(1.0)


def test_sampled_pairs_are_m_distinct_true_pairs_that_weigh_one_in_all():
    tiers = [[5], [2], [1], [4], [3]]
    every = {(b, w) for b, w, _ in pairs_of(tiers, "all")}
    sampled = pairs_of(tiers, "sample:3", random.Random(1))
    assert len({(b, w) for b, w, _ in sampled}) == 3
    assert {(b, w) for b, w, _ in sampled} <= every
    assert sum(weight for _, _, weight in sampled) == pytest.approx(1.0)


def test_ties_give_no_pair():
    pairs = pairs_of([[1, 2], [3]], "all")
    assert sorted((b, w) for b, w, _ in pairs) == [(1, 3), (2, 3)]
    assert pairs_of([[1, 2, 3]], "all") == []


@pytest.mark.parametrize("mode", ["some", "sample", "sample:0", "sample:x", "all:2"])
def test_bad_pair_modes_are_named(mode):
    with pytest.raises(RankingError, match="pairs"):
        pairs_of([[1], [2], [3]], mode)


def test_check_tiers_names_what_is_wrong():
    assert check_tiers([[2], [1], [3]], 3) == [[2], [1], [3]]
    with pytest.raises(RankingError, match="leaves out response"):
        check_tiers([[2], [1]], 3)
    with pytest.raises(RankingError, match="twice"):
        check_tiers([[2], [2], [3]], 3)
    with pytest.raises(RankingError, match="ties are not allowed"):
        check_tiers([[2, 1], [3]], 3)
    assert check_tiers([[2, 1], [3]], 3, allow_ties=True) == [[2, 1], [3]]
    with pytest.raises(RankingError, match="between 1 and 3"):
        check_tiers([[4], [1], [2]], 3)


def test_scores_become_tiers_with_equal_scores_tied():
    assert tiers_from_scores([7.0, 9.0, 7.0, 1.0]) == [[2], [1, 3], [4]]


def test_orientation_survives_any_display_shuffle():
    rng = random.Random(0)
    item_tiers = [[3], [1], [4], [2]]
    for _ in range(20):
        shown = rng.sample([1, 2, 3, 4], 4)  # display_order: item numbers in screen order
        screen = to_screen_tiers(item_tiers, shown)
        assert to_item_tiers(screen, shown) == item_tiers
        # What was typed first is the response shown at that letter.
        assert shown[screen[0][0] - 1] == 3


def test_letters_name_the_screen_order():
    assert letters_of([[2], [1, 3], [4]]) == "B (A=C) D"


def test_borda_on_hand_made_cases():
    assert borda([[[1], [2], [3]]], 3) == [[1], [2], [3]], "one ranking comes back unchanged"
    # Points K - rank: 1 gets 2 + 1, 2 gets 1 + 2, 3 gets 0 + 0: 1 and 2 tie.
    assert borda([[[1], [2], [3]], [[2], [1], [3]]], 3) == [[1, 2], [3]]
    # Two of three put 3 first; 3 gets 2+2+0 = 4, 1 gets 1+0+2 = 3, 2 gets 0+1+1 = 2.
    assert borda([[[3], [1], [2]], [[3], [2], [1]], [[1], [2], [3]]], 3) == [[3], [1], [2]]


def test_kendall_tau_on_hand_computed_cases():
    assert kendall_tau([[1], [2], [3]], [[1], [2], [3]]) == 1.0
    assert kendall_tau([[1], [2], [3]], [[3], [2], [1]]) == -1.0
    # (1,2) and (1,3) agree, (2,3) does not: (2 - 1) / 3.
    assert kendall_tau([[1], [2], [3]], [[1], [3], [2]]) == pytest.approx(1 / 3)
    # tau-b with a tie in the second: 2 concordant, 0 discordant, sqrt(3 * 2).
    assert kendall_tau([[1], [2], [3]], [[1, 2], [3]]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(kendall_tau([[1, 2, 3]], [[1], [2], [3]]))


def test_tied_responses_share_their_mean_rank():
    assert ranks_of([[2], [1, 3], [4]]) == {2: 1.0, 1: 2.5, 3: 2.5, 4: 4.0}


def test_krippendorff_alpha_on_ranks():
    same = [[[1], [2], [3]], [[1], [2], [3]]]
    assert krippendorff_alpha_ranks([same, same]) == pytest.approx(1.0)
    # Reversed orders: observed disagreement 16/6, expected 2*6*4/30 = 1.6 -> alpha = 1 - (8/3)/1.6.
    reversed_ = [[[1], [2], [3]], [[3], [2], [1]]]
    assert krippendorff_alpha_ranks([reversed_]) == pytest.approx(1 - (16 / 6) / 1.6)
    assert math.isnan(krippendorff_alpha_ranks([[[[1], [2], [3]]]])), "one annotator per item: nothing to compare"


def test_krippendorff_alpha_on_random_rankings_is_the_packages_interval_alpha_on_an_annotator_matrix():
    """Alpha does not depend on which annotator gave which rank: per-unit values give the annotator matrix's alpha."""
    import krippendorff
    import numpy as np

    rng = random.Random(7)
    units, rows = [], {0: [], 1: [], 2: []}  # annotator -> ranks per (item, response) unit
    for _ in range(30):
        truth = rng.sample([1, 2, 3, 4], 4)
        rankings = []
        for annotator in range(3):
            order = truth[:] if rng.random() < 0.6 else rng.sample(truth, 4)
            tiers = [[number] for number in order]
            rankings.append(tiers)
            ranks = ranks_of(tiers)
            rows[annotator].extend(ranks[number] for number in (1, 2, 3, 4))
        units.append(rankings)
    expected = krippendorff.alpha(reliability_data=np.array(list(rows.values())), level_of_measurement="interval")
    assert krippendorff_alpha_ranks(units) == pytest.approx(expected, abs=1e-9)


def test_item_rankings_each_keeps_every_judgment_and_borda_makes_one():
    rankings = [[[1], [2], [3]], [[2], [1], [3]]]
    assert item_rankings(rankings, 3, "each") == [([[1], [2], [3]], 0), ([[2], [1], [3]], 1)]
    assert item_rankings(rankings, 3, "borda") == [([[1, 2], [3]], None)]
    with pytest.raises(RankingError, match="ranking aggregate must be one of each, borda"):
        item_rankings(rankings, 3, "majority")
