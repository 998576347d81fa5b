"""The periodic check that keeps runs from hanging (Celery beat every RUN_WATCH_SECONDS, at worker start-up, and from
the web requests that read runs: `watch_from_web`).

Two jobs, each cheap (an indexed query per run model, an UPDATE per run it acts on):

- the outbox: a queued run that was never handed to the broker (it was down when the run started), or handed
  over more than RUN_REDISPATCH_MINUTES ago and still queued (the broker lost the message), is sent again.
  A duplicate message is harmless: the task's claim is a conditional UPDATE.
- the same outbox for queued jobs (imports, scorings: `QueuedJob`).
- lost workers: a running run whose worker process is gone (same host) or silent past RUN_STALE_MINUTES is
  failed with the reason, and resumed when RUN_AUTO_RESUME is on.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from runs.models import QueuedJob, RunStatus, TrainingRun

logger = logging.getLogger(__name__)


def training_run_models() -> list[type[TrainingRun]]:
    return [model for model in apps.get_models() if issubclass(model, TrainingRun) and model.task_name]


def resend_queued_runs() -> int:
    """Send the task of every queued run the broker may not have; how many were sent."""
    resend_before = timezone.now() - timedelta(minutes=settings.RUN_REDISPATCH_MINUTES)
    sent = 0
    for model in training_run_models():
        stuck = model.objects.filter(status=RunStatus.QUEUED, cancel_requested=False).filter(
            Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=resend_before)
        )
        for run in stuck.order_by("created_at", "pk"):
            sent += run.dispatch()
    return sent


def queued_job_models() -> list[type[QueuedJob]]:
    return [model for model in apps.get_models() if issubclass(model, QueuedJob) and model.task_name]


def resend_queued_jobs() -> int:
    """Send the task of every queued job (import, scoring) the broker may not have; how many were sent."""
    resend_before = timezone.now() - timedelta(minutes=settings.RUN_REDISPATCH_MINUTES)
    sent = 0
    for model in queued_job_models():
        stuck = model.objects.filter(status=model.QUEUED_STATUS).filter(
            Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=resend_before)
        )
        for job in stuck.order_by("created_at", "pk"):
            sent += job.dispatch()
    return sent


def fail_runs_that_lost_their_worker() -> int:
    """Fail (and, with RUN_AUTO_RESUME, resume) every running run whose worker is gone; how many."""
    failed = 0
    for model in training_run_models():
        for run in model.objects.filter(status=RunStatus.RUNNING).order_by("pk"):
            failed += run.check_worker()
    return failed


def watch_runs() -> dict[str, int]:
    # Lost workers first: a run it resumes is queued and sent on commit, so the outbox pass will not re-send it.
    result = {
        "failed": fail_runs_that_lost_their_worker(),
        "resent": resend_queued_runs(),
        "jobs_resent": resend_queued_jobs(),
    }
    if any(result.values()):
        logger.warning("Run watchdog: %s", result)
    return result


_web_lock = threading.Lock()
_web_checked_at: float | None = None


def watch_from_web() -> int:
    """The lost-worker check from a web request that reads runs (API list and detail, run pages), at most once per
    RUN_WEB_WATCH_SECONDS in each web process; how many runs it failed.

    So a run whose worker died ends even when no worker consumes the `celery` queue (a single worker on
    `-Q gpu,celery` that was killed: beat's watchdog task then waits in the queue) and no run page is open.
    Cheap: one indexed query per run model (running runs), a write only for a run that lost its worker. Never
    fails the request: a database blip here is logged and the next request tries again.
    """
    global _web_checked_at
    now = time.monotonic()
    with _web_lock:
        if _web_checked_at is not None and now - _web_checked_at < settings.RUN_WEB_WATCH_SECONDS:
            return 0
        _web_checked_at = now
    try:
        return fail_runs_that_lost_their_worker()
    except Exception:
        logger.warning("Run watchdog from a web request failed", exc_info=True)
        return 0
