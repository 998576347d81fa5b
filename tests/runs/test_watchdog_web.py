"""The lost-worker check from web requests that read runs (issue 19 item 13): a run whose only worker was killed
ends even with no worker to run beat's task and no run page open, just because the API (or a run list) is read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from rewardmodel.models import RewardModelRun
from runs import watchdog
from runs.models import RunStatus
from tests.api.conftest import api_client
from tests.runs.test_watchdog import dead_local_worker, running_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_web_watch(monkeypatch):
    monkeypatch.setattr(watchdog, "_web_checked_at", None)


def test_reading_a_run_through_the_api_fails_it_when_its_worker_is_gone(charlie, alice):
    run = running_run(charlie, alice, heartbeat_ago=timedelta(seconds=5), worker=dead_local_worker())

    body = api_client(charlie).get(f"/api/reward-runs/{run.pk}/").json()

    assert body["status"] == RunStatus.FAILED, "the answer already says so"
    assert "is gone" in body["error"]
    assert RewardModelRun.objects.get(pk=run.pk).worker_lost_at is not None


def test_listing_runs_fails_a_silent_one_past_run_stale_minutes(charlie, alice, settings):
    settings.RUN_STALE_MINUTES = 3
    silent = running_run(charlie, alice, heartbeat_ago=timedelta(minutes=4), worker="gpu-box:4242", name="a")
    alive = running_run(charlie, alice, heartbeat_ago=timedelta(seconds=20), worker="gpu-box:4243", name="c")

    rows = {row["id"]: row for row in api_client(charlie).get("/api/reward-runs/").json()["results"]}

    assert rows[silent.pk]["status"] == RunStatus.FAILED and "no heartbeat" in rows[silent.pk]["error"]
    assert rows[alive.pk]["status"] == RunStatus.RUNNING


def test_the_run_list_page_checks_too(charlie, alice, client):
    run = running_run(charlie, alice, heartbeat_ago=timedelta(seconds=5), worker=dead_local_worker())
    client.force_login(charlie)

    assert client.get(reverse("policy:run_list")).status_code == 200

    assert RewardModelRun.objects.get(pk=run.pk).status == RunStatus.FAILED


def test_the_check_runs_at_most_once_per_run_web_watch_seconds_per_process(charlie, alice, settings):
    settings.RUN_WEB_WATCH_SECONDS = 3600
    client = api_client(charlie)
    client.get("/api/reward-runs/")
    run = running_run(charlie, alice, heartbeat_ago=timedelta(seconds=5), worker=dead_local_worker())

    assert client.get(f"/api/reward-runs/{run.pk}/").json()["status"] == RunStatus.RUNNING, "checked a moment ago"
    settings.RUN_WEB_WATCH_SECONDS = 0
    assert client.get(f"/api/reward-runs/{run.pk}/").json()["status"] == RunStatus.FAILED
