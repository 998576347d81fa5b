"""Celery tasks (default queue `celery`): thin adapters over the services."""

from __future__ import annotations

from celery import shared_task

from annotate.import_jobs import run_import_job


@shared_task(acks_late=True)
def import_job(job_id: int) -> str:
    """Import one queued ImportJob's file, all or nothing."""
    return run_import_job(job_id)
