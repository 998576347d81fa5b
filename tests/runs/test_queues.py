"""Queues by resource: a run names the Celery queue (RUN_QUEUES) its task is sent to, from the form, the command
and the API; the watchdog re-sends it to the same queue."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from rewardmodel.models import RewardModelRun
from rewardmodel.services import RewardRunError, start_reward_run
from runs.models import RunQueueError, RunStatus, check_run_queue
from tests.rewardmodel.helpers import judged_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_queues(settings):
    settings.RUN_QUEUES = ["gpu", "gpu-80g"]


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """What dispatch hands to Celery, instead of a broker."""
    from celery import current_app

    calls: list[dict] = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **kwargs: calls.append({"name": name, **kwargs}))
    return calls


def test_a_blank_queue_is_the_first_of_run_queues_and_an_unknown_one_is_refused(two_queues):
    assert check_run_queue("") == "gpu"
    assert check_run_queue(" gpu-80g ") == "gpu-80g"
    with pytest.raises(RunQueueError, match="pick one of gpu, gpu-80g"):
        check_run_queue("gpu-9000")


def test_a_run_is_sent_to_its_queue_and_re_sent_there(
    two_queues, sent, charlie, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = start_reward_run(charlie, [judged_batch("b", alice)], queue="gpu-80g")
    assert run.queue == "gpu-80g"
    assert [call["queue"] for call in sent] == ["gpu-80g"]
    run.dispatch()  # what the watchdog does with a run the broker lost
    assert [call["queue"] for call in sent] == ["gpu-80g", "gpu-80g"]


def test_the_default_queue_is_gpu(sent, charlie, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = start_reward_run(charlie, [judged_batch("b", alice)])
    assert run.queue == "gpu"
    assert sent[0]["queue"] == "gpu"


def test_an_unknown_queue_starts_nothing(two_queues, charlie, alice):
    with pytest.raises(RewardRunError, match="Unknown queue 'tpu'"):
        start_reward_run(charlie, [judged_batch("b", alice)], queue="tpu")
    assert not RewardModelRun.objects.exists()


def test_the_api_takes_a_queue_and_refuses_an_unknown_one(two_queues, sent, charlie, alice, client):
    client.force_login(charlie)
    batch = judged_batch("b", alice)
    bad = client.post("/api/reward-runs/", {"batches": [batch.pk], "queue": "tpu"}, content_type="application/json")
    assert bad.status_code == 400
    assert "queue" in bad.json()
    good = client.post(
        "/api/reward-runs/", {"batches": [batch.pk], "queue": "gpu-80g"}, content_type="application/json"
    )
    assert good.status_code == 201, good.content
    assert good.json()["queue"] == "gpu-80g"


def test_the_start_form_offers_the_queues(two_queues, sent, charlie, alice, client):
    client.force_login(charlie)
    batch = judged_batch("b", alice)
    page = client.get(reverse("rewardmodel:run_new")).content.decode()
    assert 'value="gpu-80g"' in page
    response = client.post(
        reverse("rewardmodel:run_new"), {"batches": [batch.pk], "aggregate": "each", "queue": "gpu-80g"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert RewardModelRun.objects.get().queue == "gpu-80g"


def test_the_command_sends_the_run_to_a_queue_instead_of_training_here(two_queues, sent, alice, capsys):
    judged_batch("b", alice)
    call_command("train_reward_model", "--batch", "b", "--queue", "gpu-80g")
    run = RewardModelRun.objects.get()
    assert run.status == RunStatus.QUEUED and run.queue == "gpu-80g"
    assert f"Run {run.pk} queued on gpu-80g" in capsys.readouterr().out
