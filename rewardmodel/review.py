"""The disagreement review queue's data: judgments the reward model confidently disagrees with, and items whose
annotators disagree with each other, with the model's margins from stored ItemScore rows (scored by a Celery task,
capped, so the page itself never runs a model)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from django.db.models import Case, Exists, F, FloatField, JSONField, OuterRef, QuerySet, Subquery, When

from annotate.models import Item, Judgment
from annotate.review import annotator_disagreements
from rewardmodel.models import ItemScore, RewardModelRun
from rewardmodel.ordering import score_items
from rlhf.rankings import order_text, ranked_pairs
from runs.models import RunStatus

# How many judged items one press of "Score" sends to the model (the page stays fast; press again for more).
SCORE_CAP = 2000
PAGE_ROWS = 50


def review_runs() -> QuerySet[RewardModelRun]:
    """Runs the page can use, latest finished first."""
    return RewardModelRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-finished_at", "-pk")


def batch_ids_of(run: RewardModelRun) -> list[int]:
    return list(run.batches.values_list("pk", flat=True))


def judged_items(batch_ids: list[int]) -> QuerySet[Item]:
    return Item.objects.filter(batch_id__in=batch_ids).filter(Exists(Judgment.objects.filter(item_id=OuterRef("pk"))))


def unscored_count(run: RewardModelRun, batch_ids: list[int]) -> int:
    return judged_items(batch_ids).filter(~Exists(ItemScore.objects.filter(run=run, item_id=OuterRef("pk")))).count()


def score_judged(run: RewardModelRun, batch_ids: list[int], limit: int = SCORE_CAP, scorer=None) -> int:
    """Score up to `limit` judged items of the batches that `run` has not scored yet."""
    return score_items(run, judged_items(batch_ids), limit=limit, scorer=scorer)


def _gap(run: RewardModelRun) -> Subquery:
    scores = ItemScore.objects.filter(run=run, item_id=OuterRef("item_id")).values("gap_2_minus_1")[:1]
    return Subquery(scores, output_field=FloatField())


def _with_margin(run: RewardModelRun, judgments: QuerySet[Judgment]) -> QuerySet[Judgment]:
    """Pairwise `judgments` that `run` has scored, with `margin` = r(annotator's rejected) - r(annotator's chosen)."""
    return (
        judgments.filter(rating__isnull=False)
        .annotate(gap=_gap(run))
        .filter(gap__isnull=False)
        .annotate(margin=Case(When(rating__gt=0, then=-F("gap")), default=F("gap"), output_field=FloatField()))
    )


def model_disagreements(run: RewardModelRun, batch_ids: list[int], min_margin: float = 0.0) -> QuerySet[Judgment]:
    """Pairwise judgments whose rejected response the model prefers by more than `min_margin`, most confident first.

    `margin` = r(annotator's rejected) - r(annotator's chosen), from `run`'s stored scores; items it has not scored
    are not listed. Judgments marked wrong stay listed (marked), so the mark can be taken back here.
    """
    return (
        _with_margin(run, Judgment.objects.filter(item__batch_id__in=batch_ids))
        .filter(margin__gt=min_margin)
        .select_related("item__batch", "annotator", "excluded_by", "confirmed_by")
        .order_by("-margin", "pk")
    )


def most_disputed_pair(tiers: list[list[int]], rewards: list[float]) -> tuple[float, tuple[int, int]] | None:
    """The pair a ranking states that the model most disagrees with: (r(worse) - r(better), (better, worse))."""
    pairs = ranked_pairs(tiers)
    if not pairs:
        return None
    return max((rewards[worse - 1] - rewards[better - 1], (better, worse)) for better, worse in pairs)


def ranking_disagreements(
    run: RewardModelRun, batch_ids: list[int], min_margin: float = 0.0, limit: int = PAGE_ROWS
) -> list[Judgment]:
    """Ranking judgments the model disagrees with, most confident first: each one's margin is that of the pair of
    its ranking the model disputes most (`disputed` = (better, worse) as the annotator ranked them)."""
    rewards = ItemScore.objects.filter(run=run, item_id=OuterRef("item_id")).values("rewards")[:1]
    scored = (
        Judgment.objects.filter(item__batch_id__in=batch_ids, ranking__isnull=False)
        .annotate(scored=Subquery(rewards, output_field=JSONField()))
        .filter(scored__isnull=False)
        .values_list("pk", "ranking", "scored")
    )
    found = []
    for pk, tiers, item_rewards in scored.iterator():
        disputed = most_disputed_pair(tiers, item_rewards)
        if disputed is not None and disputed[0] > min_margin:
            found.append((disputed[0], -pk, disputed[1]))
    top = heapq.nlargest(limit, found)
    judgments = Judgment.objects.select_related("item__batch", "annotator", "excluded_by", "confirmed_by").in_bulk(
        [-negative_pk for _, negative_pk, _ in top]
    )
    rows = []
    for margin, negative_pk, pair in top:
        judgment = judgments[-negative_pk]
        judgment.margin, judgment.disputed = margin, pair
        judgment.disputed_text = order_text([[pair[0]], [pair[1]]])  # "A > C": the letters the page labels them with
        rows.append(judgment)
    return rows


def disagreement_rows(
    run: RewardModelRun, batch_ids: list[int], min_margin: float = 0.0, limit: int = PAGE_ROWS
) -> list[Judgment]:
    """Pairwise and ranking judgments together, most confident disagreement first."""
    rows = list(model_disagreements(run, batch_ids, min_margin)[:limit]) + ranking_disagreements(
        run, batch_ids, min_margin, limit
    )
    return sorted(rows, key=lambda judgment: (-judgment.margin, judgment.pk))[:limit]


@dataclass
class DisagreementRow:
    item: Item
    judgments: list[Judgment] = field(default_factory=list)
    gap: float | None = None  # r(response 2) - r(response 1), when the run has scored the item


def annotator_disagreement_rows(run: RewardModelRun | None, batch_ids: list[int], limit: int = PAGE_ROWS) -> list:
    items = list(annotator_disagreements(batch_ids).select_related("batch")[:limit])
    judgments = (
        Judgment.objects.filter(item__in=items)
        .select_related("annotator", "excluded_by", "confirmed_by")
        .order_by("item_id", "pk")
    )
    rows = {item.pk: DisagreementRow(item) for item in items}
    for judgment in judgments:
        rows[judgment.item_id].judgments.append(judgment)
    if run is not None:
        for item_id, gap in ItemScore.objects.filter(run=run, item__in=items).values_list("item_id", "gap_2_minus_1"):
            rows[item_id].gap = gap
    return list(rows.values())
