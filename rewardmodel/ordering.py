"""Model-ordered assignment: score a batch's open items with a reward model and store how unsure it is of each.

annotate hands out the least certain items first (annotate.services.candidate_orders reads Item.uncertainty); this
module decides which run scores them, scores them in chunks (bounded memory, resumable: an item a run has scored
is never scored again by it) and rescores when a newer run on the batch succeeds, if the batch says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from annotate.models import Batch, Item
from rewardmodel.models import BatchOrdering, ItemScore, RewardModelRun
from rewardmodel.services import RewardRunError, scorer_for
from rlhf.active import smallest_gap
from runs.models import RunStatus

logger = logging.getLogger(__name__)

# Items scored per database round trip: their texts are all that is held in memory at once.
CHUNK_SIZE = 256
SCORE_TASK = "rewardmodel.tasks.score_batch_items"


def item_uncertainty(rewards: Sequence[float]) -> float:
    """How unsure the model is about an item's order: the smallest gap between neighbouring rewards (|r1 - r2| for a
    pair), the rule the simulated curve measures (rlhf.active)."""
    return smallest_gap(rewards)


# Choosing the run ------------------------------------------------------------------------------------------------


def latest_succeeded_run(batch: Batch) -> RewardModelRun | None:
    """The most recently finished succeeded run trained on `batch` (among others)."""
    return (
        RewardModelRun.objects.filter(batches=batch, status=RunStatus.SUCCEEDED).order_by("-finished_at", "-pk").first()
    )


def ordering_of(batch: Batch) -> BatchOrdering:
    return BatchOrdering.objects.get_or_create(batch=batch)[0]


def chosen_run(ordering: BatchOrdering) -> RewardModelRun | None:
    """The run that should order the batch now: the one picked, or the latest succeeded on it."""
    return ordering.run if ordering.run_id else latest_succeeded_run(ordering.batch)


def set_model_ordering(
    batch: Batch,
    *,
    enabled: bool,
    run: RewardModelRun | None = None,
    exploration_share: float | None = None,
    refresh: str | None = None,
    dispatch: bool = True,
) -> BatchOrdering:
    """Switch a batch between import order and model order; switching on (or to another run) starts scoring.

    `run` None means "the latest succeeded run on this batch". RewardRunError when there is no usable run.
    """
    if exploration_share is not None and not 0.0 <= exploration_share <= 1.0:
        raise RewardRunError(f"The exploration share must be between 0 and 1, not {exploration_share}.")
    if run is not None and (run.status != RunStatus.SUCCEEDED or not run.artifact_path):
        raise RewardRunError(f"{run} has no trained model (status: {run.get_status_display()}).")
    if refresh is not None and refresh not in BatchOrdering.Refresh.values:
        raise RewardRunError(f"Refresh must be one of {', '.join(BatchOrdering.Refresh.values)}, not {refresh!r}.")
    with transaction.atomic():
        ordering = ordering_of(batch)
        ordering.run = run
        if refresh is not None:
            ordering.refresh = refresh
        ordering.save()
        fields = {"assignment_order": Batch.AssignmentOrder.UNCERTAINTY if enabled else Batch.AssignmentOrder.IMPORT}
        if exploration_share is not None:
            fields["exploration_share"] = exploration_share
        Batch.objects.filter(pk=batch.pk).update(**fields)
        if enabled:
            target = chosen_run(ordering)
            if target is None:
                raise RewardRunError(f"No succeeded reward-model run has been trained on {batch.name} yet: pick one.")
            if target.pk != ordering.scored_run_id or ordering.status != BatchOrdering.Status.DONE:
                request_scoring(ordering, target, dispatch=dispatch)
    ordering.refresh_from_db()
    return ordering


def request_scoring(ordering: BatchOrdering, run: RewardModelRun, dispatch: bool = True) -> None:
    """Mark the batch queued for scoring by `run` and send the task once the transaction commits."""
    BatchOrdering.objects.filter(pk=ordering.pk).update(
        status=BatchOrdering.Status.QUEUED, error="", updated_at=timezone.now()
    )
    if dispatch:
        batch_id, run_id = ordering.batch_id, run.pk
        transaction.on_commit(lambda: _send_scoring(batch_id, run_id))


def _send_scoring(batch_id: int, run_id: int) -> None:
    from celery import current_app

    try:
        current_app.send_task(SCORE_TASK, args=[batch_id, run_id])
    except Exception as exc:  # a broker that is down: the page says so, and the Rescore button tries again
        logger.warning("Could not send scoring of batch %s by run %s: %s", batch_id, run_id, exc)
        BatchOrdering.objects.filter(batch_id=batch_id).update(
            status=BatchOrdering.Status.FAILED, error=f"Could not reach the task queue: {exc}"
        )


def refresh_after_run(run: RewardModelRun, dispatch: bool = True) -> list[BatchOrdering]:
    """After `run` succeeded: rescore the model-ordered batches it trained on that follow the latest run by
    themselves (no run picked, refresh automatic). Returns the orderings sent to scoring."""
    if run.status != RunStatus.SUCCEEDED:
        return []
    orderings = BatchOrdering.objects.filter(
        batch__in=run.batches.all(),
        batch__assignment_order=Batch.AssignmentOrder.UNCERTAINTY,
        run__isnull=True,
        refresh=BatchOrdering.Refresh.AUTO,
    ).select_related("batch")
    refreshed = []
    with transaction.atomic():
        for ordering in orderings:
            if chosen_run(ordering) == run and ordering.scored_run_id != run.pk:
                request_scoring(ordering, run, dispatch=dispatch)
                refreshed.append(ordering)
    return refreshed


# Scoring ---------------------------------------------------------------------------------------------------------


def open_items(batch: Batch) -> QuerySet[Item]:
    """Items that may still be handed out: fewer judgments than the batch's overlap (gold items are shown anyway)."""
    return (
        Item.objects.filter(batch=batch, gold__isnull=True)
        .annotate(n_judgments=Count("judgments"))
        .filter(n_judgments__lt=batch.overlap)
    )


def score_items(
    run: RewardModelRun,
    items: QuerySet[Item],
    *,
    set_uncertainty: bool = False,
    limit: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    scorer=None,
    on_chunk: Callable[[int], None] | None = None,
) -> int:
    """Score the items `run` has not scored yet, `chunk_size` at a time, streamed from the database.

    Each chunk is written in one transaction (ItemScore rows, and Item.uncertainty when `set_uncertainty`), so a
    task killed midway resumes where it stopped. Returns how many items were scored.
    """
    scorer = scorer or scorer_for(run)
    pending = (
        items.filter(~Exists(ItemScore.objects.filter(run=run, item_id=OuterRef("pk"))))
        .only("pk", "prompt", "prompt_input", "response_1", "response_2", "more_responses")
        .order_by("pk")
    )
    if limit is not None:
        pending = pending[:limit]
    done = 0
    chunk: list[Item] = []
    for item in pending.iterator(chunk_size=chunk_size):
        chunk.append(item)
        if len(chunk) >= chunk_size:
            done += _score_chunk(run, chunk, scorer, set_uncertainty)
            chunk = []
            if on_chunk:
                on_chunk(done)
    if chunk:
        done += _score_chunk(run, chunk, scorer, set_uncertainty)
        if on_chunk:
            on_chunk(done)
    return done


def _score_chunk(run: RewardModelRun, items: list[Item], scorer, set_uncertainty: bool) -> int:
    prompts, responses = [], []
    for item in items:
        messages = item.chat_messages()
        for response in item.responses:
            prompts.append(messages)
            responses.append(response)
    flat = scorer.score_batch(prompts, responses)
    scores, start = [], 0
    for item in items:
        rewards = [float(r) for r in flat[start : start + item.response_count]]
        start += item.response_count
        scores.append(
            ItemScore(
                run=run,
                item=item,
                rewards=rewards,
                gap_2_minus_1=rewards[1] - rewards[0],
                uncertainty=item_uncertainty(rewards),
            )
        )
    with transaction.atomic():
        ItemScore.objects.bulk_create(scores, ignore_conflicts=True)  # a second worker on the same chunk: no harm
        if set_uncertainty:
            for item, score in zip(items, scores, strict=True):
                item.uncertainty = score.uncertainty
            Item.objects.bulk_update(items, ["uncertainty"])
    return len(items)


def score_batch_for_ordering(batch: Batch, run: RewardModelRun, chunk_size: int = CHUNK_SIZE, scorer=None) -> int:
    """The scoring task's body: every open item of `batch` gets `run`'s uncertainty as its priority.

    Items `run` scored before (an interrupted task, the review queue) take their stored score at once; the others
    are scored in chunks. Progress and throughput go on the batch's BatchOrdering row.
    """
    ordering = ordering_of(batch)
    items = open_items(batch)
    total = items.count()
    BatchOrdering.objects.filter(pk=ordering.pk).update(
        status=BatchOrdering.Status.SCORING, items_total=total, items_scored=0, error=""
    )
    stored = ItemScore.objects.filter(run=run, item_id=OuterRef("pk")).values("uncertainty")[:1]
    Item.objects.filter(batch=batch).filter(Exists(ItemScore.objects.filter(run=run, item_id=OuterRef("pk")))).update(
        uncertainty=Subquery(stored)
    )
    already = total - items.filter(~Exists(ItemScore.objects.filter(run=run, item_id=OuterRef("pk")))).count()
    started = time.perf_counter()

    def progress(done: int) -> None:
        BatchOrdering.objects.filter(pk=ordering.pk).update(items_scored=already + done, updated_at=timezone.now())

    try:
        scored = score_items(run, items, set_uncertainty=True, chunk_size=chunk_size, scorer=scorer, on_chunk=progress)
    except Exception as exc:
        BatchOrdering.objects.filter(pk=ordering.pk).update(status=BatchOrdering.Status.FAILED, error=str(exc))
        raise
    seconds = time.perf_counter() - started
    BatchOrdering.objects.filter(pk=ordering.pk).update(
        status=BatchOrdering.Status.DONE,
        scored_run=run,
        items_scored=already + scored,
        items_per_second=scored / seconds if scored and seconds > 0 else None,
        updated_at=timezone.now(),
    )
    return scored


def next_items(batch: Batch, count: int = 10) -> list[Item]:
    """The open items in the order model-ordered assignment takes them when it does not explore (for the page)."""
    from django.db.models import F

    return list(open_items(batch).order_by(F("uncertainty").asc(nulls_first=True), "pk")[:count])


def batches_with_ordering(batches: Iterable[Batch]) -> dict[int, BatchOrdering]:
    return {o.batch_id: o for o in BatchOrdering.objects.filter(batch__in=list(batches)).select_related("run")}
