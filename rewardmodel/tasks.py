"""Celery tasks (queue `gpu`, see CELERY_TASK_ROUTES; `score_job` is sent to `celery`): thin adapters over the
services."""

from __future__ import annotations

from celery import shared_task

from rewardmodel.models import RewardModelRun
from rewardmodel.services import run_reward_training, run_score_job
from runs.models import train_by_id


@shared_task(acks_late=True)
def train_reward_run(run_id: int) -> str:
    """Train one queued run. A redelivered message finds the run claimed and does nothing."""
    return train_by_id(RewardModelRun, run_id, run_reward_training)


@shared_task(acks_late=True)
def score_batch_items(batch_id: int, run_id: int) -> int:
    """Score a model-ordered batch's open items with a run (resumable: a redelivered message skips what is done)."""
    from annotate.models import Batch
    from rewardmodel.ordering import score_batch_for_ordering

    batch = Batch.objects.filter(pk=batch_id).first()
    run = RewardModelRun.objects.filter(pk=run_id).first()
    if batch is None or run is None:
        return 0
    return score_batch_for_ordering(batch, run)


@shared_task(acks_late=True)
def simulate_annotators(batch_id: int, run_id: int, annotators: int, settings: dict) -> int:
    """The staff action "answer with simulated annotators" (sent to the `celery` queue: one reward model on a CPU).
    A redelivered message carries on where the first stopped: the simulated users only take work left for them."""
    from annotate.models import Batch
    from rewardmodel.services import simulate_with_run

    batch = Batch.objects.filter(pk=batch_id).first()
    run = RewardModelRun.objects.filter(pk=run_id).first()
    if batch is None or run is None:
        return 0
    return simulate_with_run(batch, run, annotators, **settings).judgments


@shared_task(acks_late=True)
def score_judged_items(run_id: int, batch_ids: list[int], limit: int) -> int:
    """The review queue's scoring: up to `limit` judged items of the batches that the run has not scored yet."""
    from rewardmodel.review import score_judged

    run = RewardModelRun.objects.filter(pk=run_id).first()
    return 0 if run is None else score_judged(run, batch_ids, limit)


@shared_task(acks_late=True)
def score_job(job_id: int) -> str:
    """Score one queued ScoreJob (sent to queue `celery` by QueuedJob.dispatch, over CELERY_TASK_ROUTES)."""
    return run_score_job(job_id)
