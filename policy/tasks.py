"""Celery tasks (queue `gpu`, see CELERY_TASK_ROUTES): thin adapters over the services."""

from __future__ import annotations

import logging

from celery import shared_task

from policy.models import PolicyRun
from policy.services import run_policy_training

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def train_policy_run(run_id: int) -> str:
    """Train one queued run. A redelivered message finds the run claimed and does nothing."""
    run = PolicyRun.objects.filter(pk=run_id).first()
    if run is None:
        logger.warning("Policy run %s does not exist (deleted before it started?).", run_id)
        return "missing"
    return run_policy_training(run).status
