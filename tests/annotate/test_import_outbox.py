"""Import jobs go through the runs' outbox (issue 19 item 15): one started while the broker is down stays queued
and says so, and the watchdog sends it once the broker is back (a real worker and Redis)."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import Batch, ImportJob
from runs.watchdog import resend_queued_jobs, watch_runs
from tests.runs.test_watchdog import DEAD_BROKER, broker_at
from tests.worker import wait_for

IMPORT_URL = reverse("admin:annotate_batch_import")
PAIR = {"prompt": "What colour is the sky?", "response_1": "Blue.", "response_2": "Green."}


def upload() -> SimpleUploadedFile:
    text = "".join(json.dumps({**PAIR, "id": f"p{i}"}) + "\n" for i in range(20))
    return SimpleUploadedFile("late.jsonl", text.encode())


@pytest.mark.django_db(transaction=True)  # the task is sent on commit
def test_an_import_started_with_the_broker_down_stays_queued_and_says_so(charlie_client, settings):
    settings.IMPORT_BACKGROUND_BYTES = 100
    with broker_at(DEAD_BROKER):
        response = charlie_client.post(IMPORT_URL, {"file": upload(), "batch_name": "late", "format": "auto"})

    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert (job.status, job.error, job.dispatched_at, job.dispatch_attempts) == ("queued", "", None, 1)
    assert "waiting for the task queue" in charlie_client.get(response.url).content.decode()
    with broker_at(DEAD_BROKER):
        assert resend_queued_jobs() == 0, "still down: still queued, nothing lost"
    assert ImportJob.objects.get().status == "queued"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_watchdog_sends_it_once_the_broker_is_back(celery_worker, charlie_client, settings):
    settings.IMPORT_BACKGROUND_BYTES = 100
    with broker_at(DEAD_BROKER):
        charlie_client.post(IMPORT_URL, {"file": upload(), "batch_name": "late", "format": "auto"})
    job = ImportJob.objects.get()
    assert job.status == "queued"

    assert watch_runs()["jobs_resent"] == 1  # what beat's watchdog task does every minute

    wait_for(lambda: ImportJob.objects.get(pk=job.pk).is_finished, timeout=60, message=celery_worker.log())
    job.refresh_from_db()
    assert (job.status, job.items_created, job.dispatch_attempts) == ("done", 20, 2), job.error
    assert Batch.objects.get(name="late").items.count() == 20
    assert resend_queued_jobs() == 0, "a job sent and done is not sent again"
