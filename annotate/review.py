"""Reviewing judgments: staff mark a judgment wrong (left out of exports and training, reversibly) or confirm it.

One function per action, as in annotate.services; the review page (rewardmodel.review_views) and any command call
these. The marks are written with update() so that `updated_at` stays the annotator's own last change.
"""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Least
from django.utils import timezone

from annotate.models import Item, Judgment


def mark_wrong(judgment: Judgment, user, note: str = "") -> Judgment:
    """Leave the judgment out of exports and reward-model training, saying who, when and why."""
    Judgment.objects.filter(pk=judgment.pk).update(
        excluded_at=timezone.now(),
        excluded_by=user,
        exclusion_note=note.strip(),
        confirmed_at=None,
        confirmed_by=None,
    )
    return _reloaded(judgment)


def unmark_wrong(judgment: Judgment) -> Judgment:
    """Take the judgment back into exports and training."""
    Judgment.objects.filter(pk=judgment.pk).update(excluded_at=None, excluded_by=None, exclusion_note="")
    return _reloaded(judgment)


def confirm(judgment: Judgment, user) -> Judgment:
    """Record that staff looked and the judgment stands (this also takes back a 'wrong' mark)."""
    Judgment.objects.filter(pk=judgment.pk).update(
        confirmed_at=timezone.now(), confirmed_by=user, excluded_at=None, excluded_by=None, exclusion_note=""
    )
    return _reloaded(judgment)


def unconfirm(judgment: Judgment) -> Judgment:
    Judgment.objects.filter(pk=judgment.pk).update(confirmed_at=None, confirmed_by=None)
    return _reloaded(judgment)


def _reloaded(judgment: Judgment) -> Judgment:
    return Judgment.objects.select_related("item", "annotator", "excluded_by", "confirmed_by").get(pk=judgment.pk)


def annotator_disagreements(batch_ids: list[int] | None = None) -> QuerySet[Item]:
    """Pairwise items whose judgments point both ways, most evenly split first.

    Sorted by the size of the minority (2 against 2 before 1 against 3), then by item. Every judgment counts,
    marked wrong or not, so that a split stays visible while it is being reviewed. `n_for_1` / `n_for_2` count the
    judgments preferring each response. Ranking items are not listed here.
    """
    items = Item.objects.filter(more_responses=[])
    if batch_ids is not None:
        items = items.filter(batch_id__in=batch_ids)
    return (
        items.annotate(
            n_for_1=Count("judgments", filter=Q(judgments__rating__lt=0)),
            n_for_2=Count("judgments", filter=Q(judgments__rating__gt=0)),
        )
        .filter(n_for_1__gt=0, n_for_2__gt=0)
        .annotate(minority=Least("n_for_1", "n_for_2"))
        .order_by("-minority", "pk")
    )
