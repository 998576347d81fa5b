"""Celery tasks (queue `gpu`, see CELERY_TASK_ROUTES): thin adapters over the services."""

from __future__ import annotations

from celery import shared_task

from policy.models import PolicyRun
from policy.services import run_policy_training
from runs.models import train_by_id


@shared_task(acks_late=True)
def train_policy_run(run_id: int) -> str:
    """Train one queued run. A redelivered message finds the run claimed and does nothing."""
    return train_by_id(PolicyRun, run_id, run_policy_training)
