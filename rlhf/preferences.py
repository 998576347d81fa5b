"""From an item's judgments to preference pairs: direction, strength ("clear" / "slight") and margin.

A judgment is a rating on the four-level scale, as a number toward response 2: -2, -1 (response 1 clearly /
slightly better), +1, +2 (response 2 slightly / clearly better).

Aggregations (`AGGREGATIONS`):
- ``each``: one pair per judgment, in the direction it was given; margin = |rating|.
- ``majority``: one pair per item, in the direction most judgments took; a tie drops the item.
- ``agreed``: one pair per item whose judgments all point the same way; any dissent drops the item.

The strength rule (one rule for export and reward-model training alike): the mean rating toward the winner over ALL
an item's judgments (dissenting ones count against it, `Preference.margin`) decides; the pair is "clear" when it is
at least 1.5, "slight" otherwise. A single judgment is therefore clear exactly when it was rated clearly better, and
ratings (+2, +2, -1) make a slight pair (mean 1.0): one dissent weakens the preference.

The loss margin (one rule for the trainer's `margin="level"` and the export's ``margin`` column, so that TRL trained
on our export sees the margins we train with): `loss_margin(strength)`, Llama 2's discrete margin per level, 1.0 for
a clear pair and 0.0 for a slight one or a pair from a ranking (a ranking says which is better, not by how much).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

AGGREGATIONS = ("each", "majority", "agreed")
AGGREGATION_LABELS = {
    "each": "each: a pair per judgment",
    "majority": "majority: one pair per item, in the direction most judgments took (ties dropped)",
    "agreed": "agreed: one pair per item whose judgments all agree",
}
# The choices every form, command and API option offers (labels worded once, here).
AGGREGATION_CHOICES = [(name, AGGREGATION_LABELS[name]) for name in AGGREGATIONS]
LEVELS = ("clear", "slight")
# The mean rating toward the winner from which a preference counts as clear: halfway between "slightly" (1) and
# "clearly" (2) better.
CLEAR_MARGIN = 1.5
# The reward-model loss margin per strength (Llama 2: subtracted from r(chosen) − r(rejected)); any other strength
# (a ranking's pairs, an unknown level) gets 0.
LEVEL_MARGINS = {"clear": 1.0, "slight": 0.0}


# The optional loss margin of a pair from its strength (Llama 2's margin): one rule for the reward model and DPO.
MARGIN_CHOICES = (("none", "No margin"), ("level", "Margin per rating level (clearly > slightly better)"))


def level_margin(level: str, margin: str, level_margins: Mapping[str, float] | None = None) -> float:
    """The margin a pair of strength `level` must win by under the `margin` option ("none" or "level")."""
    if margin != "level":
        return 0.0
    return loss_margin(level, LEVEL_MARGINS if level_margins is None else level_margins)


def winner_of(rating: int) -> int:
    """Which response (1 or 2) a rating prefers."""
    return 2 if rating > 0 else 1


def strength_of(margin: float) -> str:
    return "clear" if margin >= CLEAR_MARGIN else "slight"


def loss_margin(strength: str, level_margins: Mapping[str, float] = LEVEL_MARGINS) -> float:
    """The margin a pair of this strength gets in the loss and in the export's ``margin`` column (module docstring)."""
    return float(level_margins.get(strength, 0.0))


@dataclass(frozen=True, slots=True)
class Preference:
    """One preference pair of an item: `winner` (1 or 2) is the chosen response."""

    winner: int
    margin: float  # the mean rating toward the winner
    n_judgments: int

    @property
    def loser(self) -> int:
        return 3 - self.winner

    @property
    def strength(self) -> str:
        return strength_of(self.margin)


def check_aggregation(aggregate: str) -> None:
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATIONS)}, not {aggregate!r}")


def item_direction(ratings: Sequence[int], aggregate: str) -> int | None:
    """The winning response (1 or 2) of an item under `majority` or `agreed`, or None when the item is dropped."""
    check_aggregation(aggregate)
    toward_2 = sum(1 for rating in ratings if rating > 0)
    toward_1 = len(ratings) - toward_2
    if not ratings or (aggregate == "majority" and toward_1 == toward_2):
        return None
    if aggregate == "agreed" and toward_1 and toward_2:
        return None
    return 2 if toward_2 > toward_1 else 1


def item_preferences(ratings: Sequence[int], aggregate: str) -> list[Preference]:
    """The preference pairs of one item's judgments: one per judgment (`each`), or one or none for the item."""
    check_aggregation(aggregate)
    if aggregate == "each":
        return [Preference(winner_of(rating), float(abs(rating)), 1) for rating in ratings]
    winner = item_direction(ratings, aggregate)
    if winner is None:
        return []
    sign = 1 if winner == 2 else -1
    margin = round(sum(rating * sign for rating in ratings) / len(ratings), 4)
    return [Preference(winner, float(margin), len(ratings))]
