"""How far judgments can be trusted: agreement per batch, and accuracy and bias per annotator.

Judgments of the import user (settings.IMPORT_USERNAME: preferences that came in
with a data set) are left out everywhere here: they are reference answers, not
annotators' work.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Length
from scipy.stats import binomtest

from annotate.models import Batch, Item, Judgment, Rating, simulated_user_ids
from annotate.ranking_quality import RankingQuality, ranking_quality
from rlhf.agreement import krippendorff_alpha
from rlhf.preferences import item_direction, winner_of

SCALE = sorted(Rating.values)  # the ordinal scale -2 < -1 < +1 < +2


@dataclass(frozen=True)
class Thresholds:
    """Below these an annotator is flagged; each needs enough evidence first."""

    gold_accuracy: float = 0.6
    gold_min_judgments: int = 5
    agreement: float = 0.5
    agreement_min_comparable: int = 10
    median_seconds: float = 3.0


THRESHOLDS = Thresholds()


@dataclass
class AnnotatorQuality:
    user_id: int
    username: str
    judgments: int = 0
    median_seconds: float | None = None
    agreement: float | None = None  # with the majority of the others, share of comparable judgments
    comparable: int = 0  # judgments on items where the others had a majority
    gold_accuracy: float | None = None
    gold_judgments: int = 0
    first_shown_share: float | None = None  # position bias: chose the response shown first
    first_shown_p_value: float | None = None  # two-sided binomial test against 1/2
    longer_share: float | None = None  # length bias: chose the longer response
    length_comparable: int = 0  # judgments whose responses differ in length
    slight_share: float | None = None
    rankings: int = 0  # ranking judgments (their figures: annotate.ranking_quality, on the annotator's page)
    flags: list[str] = field(default_factory=list)
    simulated: bool = False  # one of the simulated annotators (annotate.simulation)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass
class BatchQuality:
    batch: Batch
    items: int
    judged_items: int  # at least one judgment
    fully_judged: int  # as many judgments as the batch's overlap asks for
    judgments: int
    agreeing_pairs: int
    pairs: int  # pairs of judgments on the same item
    alpha: float | None  # Krippendorff's alpha, ordinal, on the four-level scale
    annotators: list[AnnotatorQuality]
    # Answers that came with the import file (judgments by settings.IMPORT_USERNAME): they train reward models but
    # are nobody's judgment, so none of the figures above counts them.
    imported_judgments: int = 0
    # Ranking batches: agreement as Kendall's tau and alpha on ranks, and position bias (annotate.ranking_quality).
    # Then the pairwise figures above (agreement, alpha, annotators) are empty and the counts are of rankings.
    rankings: RankingQuality | None = None

    @property
    def overlap_reached(self) -> float | None:
        """Share of items with the full overlap."""
        return self.fully_judged / self.items if self.items else None

    @property
    def mean_judgments_per_item(self) -> float | None:
        return self.judgments / self.items if self.items else None

    @property
    def agreement(self) -> float | None:
        """Share of pairs of judgments on the same item that point the same way."""
        return self.agreeing_pairs / self.pairs if self.pairs else None

    @property
    def flagged(self) -> list[AnnotatorQuality]:
        return [a for a in self.annotators if a.flags]


@dataclass(frozen=True, slots=True)
class _Row:
    item_id: int
    annotator_id: int
    rating: int
    swapped: bool
    time_ms: int
    length_1: int
    length_2: int
    gold: int | None

    @property
    def chosen(self) -> int:
        return winner_of(self.rating)


def _batch_q(batches, prefix: str = "") -> Q:
    """A filter for batches given as Batch objects, names, primary keys or a queryset."""
    if batches is None:
        return Q()
    if isinstance(batches, (Batch, str, int)):
        batches = [batches]
    if isinstance(batches, QuerySet):
        return Q(**{f"{prefix}batch__in": batches})
    batches = list(batches)
    names = [b for b in batches if isinstance(b, str)]
    ids = [b.pk if isinstance(b, Batch) else b for b in batches if not isinstance(b, str)]
    return Q(**{f"{prefix}batch__name__in": names}) | Q(**{f"{prefix}batch_id__in": ids})


def annotator_judgments(batches=None) -> QuerySet[Judgment]:
    """Judgments by people (not the import user) in the given batches (None: all)."""
    return Judgment.objects.filter(_batch_q(batches, "item__")).exclude(annotator__username=settings.IMPORT_USERNAME)


def _rows(judgments: QuerySet[Judgment]) -> list[_Row]:
    """The pairwise judgments' rows; rankings (rating None) have figures of their own (annotate.ranking_quality)."""
    judgments = judgments.filter(rating__isnull=False)
    values = judgments.annotate(length_1=Length("item__response_1"), length_2=Length("item__response_2")).values_list(
        "item_id", "annotator_id", "rating", "swapped", "time_ms", "length_1", "length_2", "item__gold"
    )
    return [_Row(*v) for v in values.iterator(chunk_size=2000)]


def _by_item(rows: Iterable[_Row]) -> dict[int, list[_Row]]:
    grouped: dict[int, list[_Row]] = defaultdict(list)
    for row in rows:
        grouped[row.item_id].append(row)
    return grouped


def pairwise_agreement(ratings_per_item: Iterable[list[int]]) -> tuple[int, int]:
    """(agreeing pairs, pairs): pairs of judgments on one item that pick the same response."""
    agreeing = pairs = 0
    for ratings in ratings_per_item:
        toward_2 = sum(1 for r in ratings if r > 0)
        toward_1 = len(ratings) - toward_2
        agreeing += toward_2 * (toward_2 - 1) // 2 + toward_1 * (toward_1 - 1) // 2
        pairs += len(ratings) * (len(ratings) - 1) // 2
    return agreeing, pairs


def ordinal_alpha(ratings_per_item: Iterable[list[int]]) -> float | None:
    """Krippendorff's alpha on the ordinal four-level scale (rlhf.agreement); None when it is undefined."""
    alpha = krippendorff_alpha(ratings_per_item, "ordinal", SCALE)
    return None if math.isnan(alpha) else alpha


def _annotator_stats(rows: list[_Row], thresholds: Thresholds) -> list[AnnotatorQuality]:
    by_item = _by_item(rows)
    by_annotator: dict[int, list[_Row]] = defaultdict(list)
    for row in rows:
        by_annotator[row.annotator_id].append(row)
    usernames = dict(get_user_model().objects.filter(pk__in=by_annotator).values_list("pk", "username"))
    simulated = simulated_user_ids()
    results = []
    for user_id, own in by_annotator.items():
        quality = AnnotatorQuality(
            user_id=user_id,
            username=usernames.get(user_id, str(user_id)),
            judgments=len(own),
            simulated=user_id in simulated,
        )
        quality.median_seconds = statistics.median(r.time_ms for r in own) / 1000

        agreed = comparable = 0
        for row in own:
            others = [o.rating for o in by_item[row.item_id] if o.annotator_id != user_id]
            majority = item_direction(others, "majority")  # the export's and the trainer's majority rule
            if majority is not None:
                comparable += 1
                agreed += row.chosen == majority
        quality.comparable = comparable
        quality.agreement = agreed / comparable if comparable else None

        gold = [r for r in own if r.gold is not None]
        quality.gold_judgments = len(gold)
        if gold:
            quality.gold_accuracy = sum(r.chosen == winner_of(r.gold) for r in gold) / len(gold)

        first = sum(r.chosen == (2 if r.swapped else 1) for r in own)
        quality.first_shown_share = first / len(own)
        quality.first_shown_p_value = float(binomtest(first, len(own), 0.5).pvalue)

        differ = [r for r in own if r.length_1 != r.length_2]
        quality.length_comparable = len(differ)
        if differ:
            longer = sum(r.chosen == (1 if r.length_1 > r.length_2 else 2) for r in differ)
            quality.longer_share = longer / len(differ)

        quality.slight_share = sum(abs(r.rating) == 1 for r in own) / len(own)
        quality.flags = _flags(quality, thresholds)
        results.append(quality)
    results.sort(key=lambda a: a.username)
    return results


def _flags(quality: AnnotatorQuality, t: Thresholds) -> list[str]:
    flags = []
    if (
        quality.gold_judgments >= t.gold_min_judgments
        and quality.gold_accuracy is not None
        and quality.gold_accuracy < t.gold_accuracy
    ):
        flags.append(f"gold accuracy {quality.gold_accuracy:.0%} < {t.gold_accuracy:.0%}")
    if (
        quality.comparable >= t.agreement_min_comparable
        and quality.agreement is not None
        and quality.agreement < t.agreement
    ):
        flags.append(f"agreement with others {quality.agreement:.0%} < {t.agreement:.0%}")
    if quality.median_seconds is not None and quality.median_seconds < t.median_seconds:
        flags.append(f"median {quality.median_seconds:.1f} s per item < {t.median_seconds:g} s")
    return flags


def annotator_quality(batches=None, thresholds: Thresholds = THRESHOLDS) -> list[AnnotatorQuality]:
    """Figures for every annotator with judgments in `batches` (None: all batches): the pairwise figures, and how many
    rankings each gave (an annotator who only ranked is listed too, with no pairwise figures)."""
    judgments = annotator_judgments(batches)
    results = _annotator_stats(_rows(judgments), thresholds)
    by_user = {quality.user_id: quality for quality in results}
    ranked = (
        judgments.filter(ranking__isnull=False)
        .values_list("annotator_id", "annotator__username")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for user_id, username, count in ranked:
        if user_id not in by_user:
            by_user[user_id] = AnnotatorQuality(user_id=user_id, username=username)
            results.append(by_user[user_id])
        by_user[user_id].rankings = count
    results.sort(key=lambda a: a.username)
    return results


def flagged_annotators(batches=None, thresholds: Thresholds = THRESHOLDS) -> dict[int, list[str]]:
    """User id -> reasons, for annotators below a threshold on `batches` (None: all).

    Usable directly in a filter: `.exclude(annotator_id__in=list(flagged_annotators(...)))`.
    """
    return {a.user_id: a.flags for a in annotator_quality(batches, thresholds) if a.flags}


def batch_quality(batch: Batch, thresholds: Thresholds = THRESHOLDS) -> BatchQuality:
    if batch.is_ranking:
        return _ranking_batch_quality(batch)
    rows = _rows(annotator_judgments(batch))
    by_item = _by_item(rows)
    ratings = [[r.rating for r in item_rows] for item_rows in by_item.values()]
    agreeing, pairs = pairwise_agreement(ratings)
    return BatchQuality(
        batch=batch,
        items=Item.objects.filter(batch=batch).count(),
        judged_items=len(by_item),
        fully_judged=sum(1 for item_rows in by_item.values() if len(item_rows) >= batch.overlap),
        judgments=len(rows),
        agreeing_pairs=agreeing,
        pairs=pairs,
        alpha=ordinal_alpha(ratings),
        annotators=_annotator_stats(rows, thresholds),
        imported_judgments=Judgment.objects.filter(
            item__batch=batch, annotator__username=settings.IMPORT_USERNAME
        ).count(),
    )


def _ranking_batch_quality(batch: Batch) -> BatchQuality:
    rankings = ranking_quality(batch)
    per_item = (
        annotator_judgments(batch).filter(ranking__isnull=False).values("item_id").annotate(n=Count("pk")).order_by()
    )
    return BatchQuality(
        batch=batch,
        items=Item.objects.filter(batch=batch).count(),
        judged_items=rankings.ranked_items,
        fully_judged=sum(1 for row in per_item if row["n"] >= batch.overlap),
        judgments=rankings.rankings,
        agreeing_pairs=0,
        pairs=0,
        alpha=None,
        annotators=[],
        imported_judgments=Judgment.objects.filter(
            item__batch=batch, annotator__username=settings.IMPORT_USERNAME
        ).count(),
        rankings=rankings,
    )


def annotator_report(annotator) -> dict:
    """The annotator page's figures: overall, per batch judged, and the ratings given; per ranking batch ranked,
    the ranking figures (annotate.ranking_quality)."""
    overall: AnnotatorQuality | None = next(
        (a for a in annotator_quality() if a.user_id == annotator.pk and a.judgments), None
    )  # the pairwise figures; rankings have their own below
    everything = annotator_judgments().filter(annotator=annotator)
    own = everything.filter(rating__isnull=False)
    per_batch = [
        {"batch": batch, "figures": next(a for a in annotator_quality(batch) if a.user_id == annotator.pk)}
        for batch in Batch.objects.filter(pk__in=own.values("item__batch_id")).order_by("pk")
    ]
    ranked = Batch.objects.filter(pk__in=everything.filter(ranking__isnull=False).values("item__batch_id"))
    rankings = [
        {"batch": batch, "figures": next(a for a in ranking_quality(batch).annotators if a.user_id == annotator.pk)}
        for batch in ranked.filter(kind=Batch.Kind.RANKING).order_by("pk")
    ]
    counts = dict(own.values_list("rating").annotate(n=Count("pk")).order_by())
    ratings = [{"rating": value, "label": label, "count": counts.get(value, 0)} for value, label in Rating.choices]
    return {
        "user_id": annotator.pk,
        "username": annotator.get_username(),
        "overall": overall,
        "per_batch": per_batch,
        "ratings": ratings,
        "rankings": rankings,
    }
