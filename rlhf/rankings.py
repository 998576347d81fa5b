"""K-way rankings: checking them, turning them into preference pairs, aggregating and comparing them.

A ranking orders an item's K responses best first. It is stored as *tiers*: a list of lists of response numbers
(1-based, the item's own order), best tier first. Without ties every tier holds one response; a tier of several is a
tie, and a tie gives no pair. Example for K = 4: ``[[3], [1, 4], [2]]`` says 3 is best, 1 and 4 tie, 2 is worst.

The lecture's reward-model objective: each of a ranking's C(K,2) pairs enters the loss weighted 1/C(K,2), so every
ranked prompt counts once however large K is; in practice a subset of the pairs may be sampled (`PAIR_MODES`).

Django-free: the importer, the HIT, the export, the quality page and reward-model training all use these.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

from rlhf.agreement import krippendorff_alpha

Tiers = list[list[int]]

MIN_RANKING_SIZE = 3  # a ranking batch shows at least 3 responses (2 is a pairwise item)
MAX_RANKING_SIZE = 9  # InstructGPT ranked 4 to 9
LETTERS = "ABCDEFGHI"  # how the K responses are labelled on screen
# How a ranking becomes pairs: every pair, each neighbour pair, or M pairs sampled ("sample:M").
PAIR_MODES = ("all", "adjacent", "sample")
RANKING_AGGREGATIONS = ("each", "borda")
RANKING_AGGREGATION_LABELS = {
    "each": "each: one ranking per judgment (an item ranked by three people counts three times)",
    "borda": "borda: one ranking per item, the Borda count of its rankings (ties where totals are equal)",
}
RANKING_AGGREGATION_CHOICES = [(name, RANKING_AGGREGATION_LABELS[name]) for name in RANKING_AGGREGATIONS]


class RankingError(ValueError):
    """A ranking that is not a ranking of the item's responses (the message says what is wrong)."""


def check_tiers(tiers: object, size: int, allow_ties: bool = False) -> Tiers:
    """`tiers` as a complete ranking of responses 1..size, or RankingError naming what is wrong."""
    if not isinstance(tiers, list) or not tiers:
        raise RankingError("a ranking must be a non-empty list")
    seen: list[int] = []
    for tier in tiers:
        if not isinstance(tier, list) or not tier:
            raise RankingError("each place in a ranking must be a non-empty list of response numbers")
        if len(tier) > 1 and not allow_ties:
            raise RankingError("ties are not allowed in this batch")
        for number in tier:
            if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= size:
                raise RankingError(f"response number {number!r} is not between 1 and {size}")
        seen.extend(tier)
    if len(set(seen)) != len(seen):
        raise RankingError("a response appears twice in the ranking")
    if len(seen) != size:
        missing = sorted(set(range(1, size + 1)) - set(seen))
        raise RankingError(f"the ranking leaves out response(s) {', '.join(map(str, missing))}")
    if len(tiers) == 1 and size > 1:
        # Reachable only where ties are allowed: it would count as complete and give no preference pair at all.
        raise RankingError(f"all {size} responses are tied in one place, which says nothing; rank at least two places")
    return [list(tier) for tier in tiers]


def tiers_from_order(order: Sequence[int]) -> Tiers:
    """A strict order (response numbers best first) as tiers."""
    return [[number] for number in order]


def tiers_from_scores(scores: Sequence[float]) -> Tiers:
    """Scores (higher is better, UltraFeedback style; equal scores tie) as tiers of 1-based response numbers."""
    by_score: dict[float, list[int]] = {}
    for number, score in enumerate(scores, start=1):
        by_score.setdefault(float(score), []).append(number)
    return [by_score[score] for score in sorted(by_score, reverse=True)]


def ranks_of(tiers: Tiers) -> dict[int, float]:
    """Each response's rank (1 = best); tied responses share the mean of the ranks they span."""
    ranks: dict[int, float] = {}
    place = 1
    for tier in tiers:
        mean_rank = place + (len(tier) - 1) / 2
        for number in tier:
            ranks[number] = mean_rank
        place += len(tier)
    return ranks


def ranked_pairs(tiers: Tiers) -> list[tuple[int, int]]:
    """Every (better, worse) pair the ranking states: C(K,2) without ties; tied responses give none."""
    return [(better, worse) for high, low in itertools.combinations(tiers, 2) for better in high for worse in low]


def adjacent_pairs(tiers: Tiers) -> list[tuple[int, int]]:
    """The pairs between neighbouring tiers only (K-1 without ties)."""
    return [(better, worse) for high, low in itertools.pairwise(tiers) for better in high for worse in low]


def parse_pair_mode(mode: str) -> tuple[str, int]:
    """'all' | 'adjacent' | 'sample:M' as (kind, M); RankingError naming the problem."""
    kind, _, count = mode.partition(":")
    if kind not in PAIR_MODES:
        raise RankingError(f"pairs must be one of all, adjacent, sample:M, got {mode!r}")
    if kind != "sample":
        if count:
            raise RankingError(f"pairs {kind!r} takes no count")
        return kind, 0
    try:
        sampled = int(count)
    except ValueError:
        raise RankingError(f"pairs sample:M needs a whole number M, got {mode!r}") from None
    if sampled < 1:
        raise RankingError("pairs sample:M needs M of at least 1")
    return kind, sampled


def pairs_of(tiers: Tiers, mode: str = "all", rng: random.Random | None = None) -> list[tuple[int, int, float]]:
    """(better, worse, weight) for the ranking's pairs under `mode`; the weights of one ranking sum to 1.

    With ``all`` each of the C(K,2) pairs weighs 1/C(K,2) (the lecture). ``adjacent`` and ``sample:M`` keep fewer
    pairs, each weighing 1/(pairs kept), so a ranked prompt still counts once.
    """
    kind, count = parse_pair_mode(mode)
    pairs = adjacent_pairs(tiers) if kind == "adjacent" else ranked_pairs(tiers)
    if kind == "sample" and len(pairs) > count:
        pairs = (rng or random.Random()).sample(pairs, count)
    if not pairs:
        return []
    weight = 1.0 / len(pairs)
    return [(better, worse, weight) for better, worse in pairs]


def to_item_tiers(screen_tiers: Tiers, display_order: Sequence[int]) -> Tiers:
    """Tiers of screen positions (1 = the first response shown, "A") as tiers of the item's response numbers."""
    return [[display_order[position - 1] for position in tier] for tier in screen_tiers]


def to_screen_tiers(item_tiers: Tiers, display_order: Sequence[int]) -> Tiers:
    """The inverse of `to_item_tiers`."""
    position_of = {number: position for position, number in enumerate(display_order, start=1)}
    return [[position_of[number] for number in tier] for tier in item_tiers]


def letters_of(screen_tiers: Tiers) -> str:
    """Screen tiers as letters, e.g. [[2], [1, 3]] -> 'B (A=C)'; ties in parentheses joined by '='."""
    parts = []
    for tier in screen_tiers:
        names = "=".join(LETTERS[position - 1] for position in tier)
        parts.append(f"({names})" if len(tier) > 1 else names)
    return " ".join(parts)


def order_text(item_tiers: Tiers) -> str:
    """Tiers of response numbers as the letters that label them, best first: [[2], [1], [4, 3]] -> 'B > A > D = C'."""
    return " > ".join(" = ".join(LETTERS[number - 1] for number in tier) for tier in item_tiers)


def borda(rankings: Sequence[Tiers], size: int) -> Tiers:
    """Several annotators' rankings of one item as one, by Borda count.

    Each ranking gives a response K - rank points (ties share the mean), the points are summed, and responses are
    ordered by total; equal totals tie. With one ranking this returns it unchanged.
    """
    totals = {number: 0.0 for number in range(1, size + 1)}
    for tiers in rankings:
        for number, rank in ranks_of(tiers).items():
            totals[number] += size - rank
    return tiers_from_scores([totals[number] for number in range(1, size + 1)])


def item_rankings(rankings: Sequence[Tiers], size: int, aggregate: str) -> list[tuple[Tiers, int | None]]:
    """The rankings one item contributes under `aggregate` (RANKING_AGGREGATIONS), as (tiers, source): with ``each``
    every annotator's ranking and its index in `rankings`; with ``borda`` one Borda ranking of them all, source None.

    The ranking twin of rlhf.preferences.item_preferences: the export and reward-model training both call it.
    """
    check_ranking_aggregation(aggregate)
    if aggregate == "borda":
        return [(borda(rankings, size), None)]
    return [(tiers, index) for index, tiers in enumerate(rankings)]


def check_ranking_aggregation(aggregate: str) -> None:
    """RankingError unless `aggregate` is one of RANKING_AGGREGATIONS (the twin of preferences.check_aggregation)."""
    if aggregate not in RANKING_AGGREGATIONS:
        raise RankingError(f"ranking aggregate must be one of {', '.join(RANKING_AGGREGATIONS)}, not {aggregate!r}")


def kendall_tau(first: Tiers, second: Tiers) -> float:
    """Kendall's tau-b between two rankings of the same responses (1 same order, -1 reversed); nan if undefined.

    tau-b corrects for ties: (concordant - discordant) / sqrt((n0 - ties in first) * (n0 - ties in second)).
    """
    rank_a, rank_b = ranks_of(first), ranks_of(second)
    numbers = sorted(rank_a)
    if sorted(rank_b) != numbers:
        raise RankingError("the two rankings are not of the same responses")
    concordant = discordant = tied_a = tied_b = 0
    for i, j in itertools.combinations(numbers, 2):
        da, db = rank_a[i] - rank_a[j], rank_b[i] - rank_b[j]
        if da == 0 and db == 0:
            tied_a += 1
            tied_b += 1
        elif da == 0:
            tied_a += 1
        elif db == 0:
            tied_b += 1
        elif (da > 0) == (db > 0):
            concordant += 1
        else:
            discordant += 1
    n0 = len(numbers) * (len(numbers) - 1) // 2
    denominator = math.sqrt((n0 - tied_a) * (n0 - tied_b))
    return (concordant - discordant) / denominator if denominator else math.nan


def tiers_from_rewards(rewards: Sequence[float]) -> Tiers:
    """A reward model's order of responses 1..K (higher reward is better)."""
    return tiers_from_scores(rewards)


def krippendorff_alpha_ranks(units: Sequence[Sequence[Tiers]]) -> float:
    """Krippendorff's alpha (interval metric on ranks) for agreement between annotators' rankings.

    `units` holds, per item, the rankings its annotators gave; each (item, response) is a unit whose values are the
    ranks it received (rlhf.agreement.krippendorff_alpha). nan when nothing is pairable.
    """
    values_by_unit: list[list[float]] = []
    for rankings in units:
        per_response: dict[int, list[float]] = {}
        for tiers in rankings:
            for number, rank in ranks_of(tiers).items():
                per_response.setdefault(number, []).append(rank)
        values_by_unit.extend(per_response.values())
    return krippendorff_alpha(values_by_unit, "interval")
