"""The run watchdog as a Celery task (scheduled by CELERY_BEAT_SCHEDULE) and at every worker's start-up."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import connections

from runs.watchdog import watch_runs

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def watch_training_runs() -> dict[str, int]:
    """Re-send queued runs the broker never got; fail (or resume) running runs whose worker is gone."""
    return watch_runs()


@worker_ready.connect
def watch_runs_at_worker_start(sender=None, **kwargs) -> None:
    """A worker that starts (perhaps after the one before it was killed) settles what that one left behind."""
    try:
        result = watch_runs()
        logger.info("Run watchdog at worker start-up: %s", result)
    except Exception:  # never keep a worker from serving because the check failed
        logger.exception("Run watchdog at worker start-up failed")
    finally:
        connections.close_all()  # the main process must not hand an open connection to pool children it forks
