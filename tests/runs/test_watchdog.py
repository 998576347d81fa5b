"""Runs never hang: the periodic watchdog fails runs whose worker is gone (with the reason) and re-sends queued
runs the broker never got; a start request with the broker down still answers and leaves a run that starts once
the broker is back (a real worker and Redis / the filesystem broker, as in production)."""

from __future__ import annotations

import socket
import subprocess
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from arbiter.celery import app
from rewardmodel.models import RewardModelRun
from rewardmodel.services import start_reward_run
from runs.models import RunStatus
from runs.tasks import watch_training_runs
from runs.watchdog import resend_queued_runs, watch_runs
from tests.rewardmodel.helpers import build_tiny_backbone, judged_batch
from tests.worker import wait_for

TINY = {"epochs": 1, "batch_size": 4, "eval_fraction": 0.25, "log_every": 1, "learning_rate": 1e-3}
DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused at once


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


def dead_local_worker() -> str:
    """A "host:pid" on this host whose process has exited."""
    probe = subprocess.Popen(["true"])
    probe.wait()
    return f"{socket.gethostname()}:{probe.pid}"


def running_run(charlie, alice, *, heartbeat_ago: timedelta, worker: str, name: str = "b") -> RewardModelRun:
    run = start_reward_run(charlie, [judged_batch(name, alice, items=2)], dispatch=False)
    beat = timezone.now() - heartbeat_ago
    RewardModelRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=beat, heartbeat_at=beat, worker=worker
    )
    run.refresh_from_db()
    return run


@contextmanager
def broker_at(url: str):
    """Point this process's Celery app at another broker (its connection pools are rebuilt either way)."""

    def drop_pools() -> None:
        # Dropped, not closed: kombu keeps one pool per broker URL and hands the same one back later.
        app._pool = None
        app.amqp._producer_pool = None

    saved = app.conf.broker_url
    drop_pools()
    app.conf.broker_url = url
    try:
        yield
    finally:
        drop_pools()
        app.conf.broker_url = saved


@pytest.mark.django_db
def test_the_watchdog_fails_silent_and_dead_runs_with_the_reason_and_leaves_live_ones(charlie, alice, settings):
    settings.RUN_STALE_MINUTES = 3
    silent = running_run(charlie, alice, heartbeat_ago=timedelta(minutes=4), worker="gpu-box:4242", name="a")
    dead = running_run(charlie, alice, heartbeat_ago=timedelta(seconds=5), worker=dead_local_worker(), name="b")
    alive = running_run(charlie, alice, heartbeat_ago=timedelta(minutes=2), worker="gpu-box:4243", name="c")

    assert watch_runs() == {"failed": 2, "resent": 0, "jobs_resent": 0}

    for run in (silent, dead, alive):
        run.refresh_from_db()
    assert silent.status == RunStatus.FAILED and silent.can_resume
    assert "no heartbeat from gpu-box:4242 for 4 min" in silent.error
    assert dead.status == RunStatus.FAILED and f"its process {dead.worker} is gone" in dead.error
    assert alive.status == RunStatus.RUNNING


@pytest.mark.django_db
def test_auto_resume_queues_a_lost_run_again_a_bounded_number_of_times(charlie, alice, settings):
    settings.RUN_AUTO_RESUME = True
    settings.RUN_MAX_AUTO_RESUMES = 1
    run = running_run(charlie, alice, heartbeat_ago=timedelta(minutes=10), worker="gpu-box:1")

    watch_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.resumes == 1

    RewardModelRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=10), worker="gpu-box:2"
    )
    watch_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.resumes == 1  # lost again: left for a person to look at


def test_the_watchdog_runs_every_minute_from_beat():
    entry = django_settings.CELERY_BEAT_SCHEDULE["watch-training-runs"]
    assert entry["task"] == watch_training_runs.name and entry["schedule"] <= 60
    assert "watch_runs_at_worker_start" in {receiver.__name__ for receiver in _worker_ready_receivers()}


def _worker_ready_receivers():
    from celery.signals import worker_ready

    return [ref() if callable(ref) else ref for _, ref in worker_ready.receivers]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_run_started_while_the_broker_is_down_starts_once_it_is_back(
    celery_worker, charlie_client, alice, tiny_backbone
):
    batch = judged_batch("b", alice)
    form = {
        "batches": [batch.pk],
        "backbone": tiny_backbone,
        "epochs": 1,
        "learning_rate": 1e-3,
        "batch_size": 4,
        "eval_fraction": 0.25,
        "margin": "none",
        "aggregate": "each",
    }

    with broker_at(DEAD_BROKER):
        response = charlie_client.post(reverse("rewardmodel:run_new"), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    run = RewardModelRun.objects.get()
    assert run.status == RunStatus.QUEUED and run.dispatched_at is None and run.dispatch_attempts == 1
    page = charlie_client.get(run.get_absolute_url()).content.decode()
    assert "waiting for the broker" in page

    assert resend_queued_runs() == 1  # what the beat task does every minute, the broker now back

    wait_for(lambda: _finished(run), timeout=60, message=f"the re-sent run to finish\n{celery_worker.log()}")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.dispatched_at is not None and run.dispatch_attempts == 2


@pytest.mark.django_db(transaction=True)  # the task is sent on commit
def test_the_api_answers_201_with_the_broker_down(charlie, alice, tiny_backbone):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(charlie)
    batch = judged_batch("b", alice)
    with broker_at(DEAD_BROKER):
        response = client.post(
            "/api/reward-runs/", {"batches": [batch.pk], "options": {"backbone": tiny_backbone, **TINY}}, format="json"
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["dispatched_at"] is None and body["dispatch_attempts"] == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_starting_worker_sends_what_was_never_sent_and_fails_what_its_predecessor_left(
    celery_worker, charlie, alice, tiny_backbone
):
    celery_worker.stop()
    orphan = running_run(charlie, alice, heartbeat_ago=timedelta(seconds=5), worker=dead_local_worker(), name="o")
    never_sent = start_reward_run(charlie, [judged_batch("n", alice)], backbone=tiny_backbone, dispatch=False, **TINY)

    celery_worker.__init__()
    celery_worker.start()

    wait_for(lambda: _finished(never_sent), timeout=60, message=f"the unsent run to finish\n{celery_worker.log()}")
    assert never_sent.status == RunStatus.SUCCEEDED, never_sent.error
    orphan.refresh_from_db()
    assert orphan.status == RunStatus.FAILED and "is gone" in orphan.error


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_beat_task_runs_on_the_worker(celery_worker, charlie, alice):
    stale = running_run(charlie, alice, heartbeat_ago=timedelta(hours=1), worker="gpu-box:9")

    watch_training_runs.delay()

    wait_for(lambda: _finished(stale), timeout=30, message=f"the watchdog task\n{celery_worker.log()}")
    assert stale.status == RunStatus.FAILED and "no heartbeat" in stale.error


def _finished(run: RewardModelRun) -> RewardModelRun | None:
    run.refresh_from_db()
    return run if run.is_finished else None
