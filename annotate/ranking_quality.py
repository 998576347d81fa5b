"""How far rankings can be trusted: agreement between annotators (Kendall's tau, Krippendorff's alpha on ranks) and
position bias, per ranking batch and per annotator.

The rules (tau, alpha, ranks) live in `rlhf.rankings`; this module gathers a batch's ranking judgments for them.
As on the rest of the quality page, the import user's judgments (known orders that came with a file) are left out.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from scipy.stats import binomtest

from annotate.models import Batch, simulated_user_ids
from rlhf.rankings import Tiers, kendall_tau, krippendorff_alpha_ranks


@dataclass(frozen=True, slots=True)
class _Ranking:
    item_id: int
    annotator_id: int
    tiers: Tiers
    display_order: list[int]
    time_ms: int

    @property
    def size(self) -> int:
        return sum(len(tier) for tier in self.tiers)

    @property
    def first_shown_ranked_first(self) -> bool:
        """Whether the response shown first (as A) is in the best place (alone or tied)."""
        return self.display_order[0] in self.tiers[0]

    @property
    def first_shown_chance(self) -> float:
        """The chance of that if the display position did not matter: the best place's share of the responses."""
        return len(self.tiers[0]) / self.size


@dataclass
class PositionBias:
    """How often the response shown first was ranked first, against what chance gives (1/K without ties)."""

    rankings: int = 0  # rankings with a recorded display order
    first_shown_first: int = 0
    expected_share: float | None = None  # mean chance over those rankings: 1/K without ties
    p_value: float | None = None  # two-sided binomial test against expected_share

    @property
    def share(self) -> float | None:
        return self.first_shown_first / self.rankings if self.rankings else None


@dataclass
class AnnotatorRankingQuality:
    user_id: int
    username: str
    rankings: int = 0
    median_seconds: float | None = None
    mean_tau: float | None = None  # mean Kendall's tau with the others' rankings of the same items
    tau_pairs: int = 0  # (own ranking, other's ranking) pairs behind mean_tau
    position_bias: PositionBias = field(default_factory=PositionBias)
    simulated: bool = False  # one of the simulated annotators (annotate.simulation)


@dataclass
class RankingQuality:
    """A ranking batch's agreement and position bias."""

    rankings: int  # ranking judgments by annotators
    ranked_items: int  # items with at least one
    multiply_ranked: int  # items ranked by two annotators or more: the ones agreement is measured on
    mean_tau: float | None  # mean Kendall's tau-b over every pair of rankings of the same item
    tau_pairs: int
    alpha: float | None  # Krippendorff's alpha, interval metric on ranks
    position_bias: PositionBias
    annotators: list[AnnotatorRankingQuality]


def _rankings(batch: Batch) -> list[_Ranking]:
    from annotate.quality import annotator_judgments  # the one rule for "judgments by people"

    rows = (
        annotator_judgments(batch)
        .filter(ranking__isnull=False)
        .order_by("item_id", "pk")
        .values_list("item_id", "annotator_id", "ranking", "display_order", "time_ms")
    )
    return [_Ranking(*row) for row in rows]


def _position_bias(rankings: list[_Ranking]) -> PositionBias:
    shown = [r for r in rankings if r.display_order]
    if not shown:
        return PositionBias()
    first = sum(r.first_shown_ranked_first for r in shown)
    expected = statistics.fmean(r.first_shown_chance for r in shown)
    p_value = float(binomtest(first, len(shown), expected).pvalue) if 0 < expected < 1 else None
    return PositionBias(len(shown), first, expected, p_value)


def _mean(values: list[float]) -> float | None:
    defined = [v for v in values if not math.isnan(v)]
    return statistics.fmean(defined) if defined else None


def ranking_quality(batch: Batch) -> RankingQuality:
    rankings = _rankings(batch)
    by_item: dict[int, list[_Ranking]] = defaultdict(list)
    for ranking in rankings:
        by_item[ranking.item_id].append(ranking)
    taus = [kendall_tau(a.tiers, b.tiers) for item in by_item.values() for a, b in itertools.combinations(item, 2)]
    alpha = krippendorff_alpha_ranks([[r.tiers for r in item] for item in by_item.values()])
    return RankingQuality(
        rankings=len(rankings),
        ranked_items=len(by_item),
        multiply_ranked=sum(1 for item in by_item.values() if len(item) >= 2),
        mean_tau=_mean(taus),
        tau_pairs=len(taus),
        alpha=None if math.isnan(alpha) else alpha,
        position_bias=_position_bias(rankings),
        annotators=_annotators(rankings, by_item),
    )


def _annotators(rankings: list[_Ranking], by_item: dict[int, list[_Ranking]]) -> list[AnnotatorRankingQuality]:
    by_annotator: dict[int, list[_Ranking]] = defaultdict(list)
    for ranking in rankings:
        by_annotator[ranking.annotator_id].append(ranking)
    usernames = dict(get_user_model().objects.filter(pk__in=by_annotator).values_list("pk", "username"))
    simulated = simulated_user_ids()
    results = []
    for user_id, own in by_annotator.items():
        taus = [
            kendall_tau(mine.tiers, other.tiers)
            for mine in own
            for other in by_item[mine.item_id]
            if other.annotator_id != user_id
        ]
        results.append(
            AnnotatorRankingQuality(
                user_id=user_id,
                username=usernames.get(user_id, str(user_id)),
                rankings=len(own),
                median_seconds=statistics.median(r.time_ms for r in own) / 1000,
                mean_tau=_mean(taus),
                tau_pairs=len(taus),
                position_bias=_position_bias(own),
                simulated=user_id in simulated,
            )
        )
    results.sort(key=lambda a: a.username)
    return results
