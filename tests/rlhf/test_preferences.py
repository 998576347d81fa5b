"""The aggregation rule on hand-made ratings: direction, strength and margin for each / majority / agreed."""

import pytest

from rlhf.preferences import AGGREGATIONS, Preference, item_direction, item_preferences, loss_margin, strength_of


def summary(ratings: list[int], aggregate: str) -> list[tuple[int, str, float, int]]:
    return [(p.winner, p.strength, p.margin, p.n_judgments) for p in item_preferences(ratings, aggregate)]


def test_each_gives_one_pair_per_judgment_with_its_own_strength():
    assert summary([2, -1, 1, -2], "each") == [
        (2, "clear", 2.0, 1),
        (1, "slight", 1.0, 1),
        (2, "slight", 1.0, 1),
        (1, "clear", 2.0, 1),
    ]


def test_one_dissent_makes_a_majority_slight_whatever_the_agreeing_strength():
    # Two "clearly better" against one "slightly worse": mean toward response 2 is (2 + 2 - 1) / 3 = 1.0.
    assert summary([2, 2, -1], "majority") == [(2, "slight", 1.0, 3)]


def test_majority_is_clear_at_a_mean_of_one_and_a_half():
    assert summary([-2, -2, -1, -1], "majority") == [(1, "clear", 1.5, 4)]
    assert summary([2, 2, 1], "majority") == [(2, "clear", 1.6667, 3)]
    assert summary([2, 1], "majority") == [(2, "clear", 1.5, 2)]
    assert summary([1, 1, 2, -1], "majority") == [(2, "slight", 0.75, 4)]


def test_majority_drops_ties_and_keeps_a_lone_judgment():
    assert summary([2, -2], "majority") == []
    assert summary([1, 1, -2, -2], "majority") == []
    assert summary([-1], "majority") == [(1, "slight", 1.0, 1)]


def test_agreed_keeps_only_unanimous_items():
    assert summary([2, 1, 2], "agreed") == [(2, "clear", 1.6667, 3)]
    assert summary([-1, -1], "agreed") == [(1, "slight", 1.0, 2)]
    assert summary([2, 2, -1], "agreed") == []


def test_direction_says_which_items_are_kept():
    assert item_direction([2, 2, -1], "majority") == 2
    assert item_direction([2, -2], "majority") is None
    assert item_direction([2, 2, -1], "agreed") is None
    assert item_direction([], "majority") is None


def test_unknown_aggregation_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="each, majority, agreed"):
        item_preferences([1], "mean")
    assert AGGREGATIONS == ("each", "majority", "agreed")


def test_strength_threshold_and_loser():
    assert (strength_of(1.49), strength_of(1.5), strength_of(2.0)) == ("slight", "clear", "clear")
    assert Preference(winner=1, margin=2.0, n_judgments=1).loser == 2


def test_the_loss_margin_is_one_for_clear_and_zero_otherwise():
    """One rule for the trainer's margin="level" and the export's margin column (TRL trains on what we train on)."""
    assert [loss_margin(strength) for strength in ("clear", "slight", "ranked", "")] == [1.0, 0.0, 0.0, 0.0]
    assert loss_margin("slight", {"clear": 2.0, "slight": 0.5}) == 0.5
