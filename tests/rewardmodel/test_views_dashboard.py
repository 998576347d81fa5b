"""The reward-model dashboard: staff only; start a run, watch it, cancel it, download and try the model."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from transformers import AutoModelForSequenceClassification

from annotate.models import Batch
from rewardmodel.models import RewardModelRun, ScoreJob
from rewardmodel.services import run_reward_training, run_score_job, start_reward_run
from rewardmodel.train import DEFAULT_BACKBONE
from runs.models import RunStatus
from tests.rewardmodel.helpers import build_tiny_backbone, judged_batch
from tests.worker import wait_for

TINY = {"epochs": 2, "batch_size": 4, "eval_fraction": 0.25, "log_every": 1, "learning_rate": 1e-3}
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.ARTIFACTS_DIR


@pytest.fixture
def trained_run(charlie, alice, tiny_backbone, artifacts) -> RewardModelRun:
    run = start_reward_run(charlie, [judged_batch("trained", alice)], backbone=tiny_backbone, dispatch=False, **TINY)
    return run_reward_training(run)


def _pages(pk: int) -> list[tuple[str, str]]:
    return [
        ("get", reverse("rewardmodel:run_list")),
        ("get", reverse("rewardmodel:run_new")),
        ("get", reverse("rewardmodel:run_detail", args=[pk])),
        ("get", reverse("rewardmodel:run_live", args=[pk])),
        ("get", reverse("rewardmodel:run_download", args=[pk])),
        ("post", reverse("rewardmodel:run_cancel", args=[pk])),
        ("post", reverse("rewardmodel:run_score", args=[pk])),
    ]


@pytest.mark.django_db
def test_annotators_are_refused_every_page(alice_client):
    run = RewardModelRun.objects.create()

    for method, url in _pages(run.pk):
        assert getattr(alice_client, method)(url).status_code == 403, url
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and not run.cancel_requested


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in(client):
    run = RewardModelRun.objects.create()

    for method, url in _pages(run.pk):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


@pytest.mark.django_db
def test_the_start_form_offers_batches_and_the_trainers_defaults(charlie_client, alice):
    judged_batch("judged", alice, items=3)
    Batch.objects.create(name="untouched")

    page = charlie_client.get(reverse("rewardmodel:run_new")).content.decode()

    assert "judged (3 items, 3 judgments)" in page and "untouched (0 items, 0 judgments)" in page
    assert f'value="{DEFAULT_BACKBONE}"' in page
    assert 'name="epochs" value="1"' in page and 'name="learning_rate" value="5e-05"' in page


@pytest.mark.django_db
def test_the_start_form_names_what_is_wrong(charlie_client):
    Batch.objects.create(name="untouched")
    untouched = Batch.objects.get(name="untouched")
    form = {
        "batches": [untouched.pk],
        "backbone": "/no/such/folder",
        "epochs": 0,
        "learning_rate": 1e-5,
        "batch_size": 8,
        "eval_fraction": 0.2,
        "margin": "none",
        "aggregate": "each",
    }

    page = charlie_client.post(reverse("rewardmodel:run_new"), form).content.decode()

    assert "No judgments yet in: untouched." in page
    assert "backbone: /no/such/folder is not inside a model folder root" in page
    assert "epochs must be a whole number in [1, 1000], got 0." in page
    assert not RewardModelRun.objects.exists()


@pytest.mark.django_db
def test_a_finished_run_shows_curves_level_accuracy_download_and_scoring(charlie_client, trained_run):
    assert trained_run.status == RunStatus.SUCCEEDED, trained_run.error
    detail = charlie_client.get(trained_run.get_absolute_url()).content.decode()

    assert "Succeeded" in detail
    assert "hx-trigger" not in detail  # nothing to poll
    assert detail.count("<polyline") >= 3  # train loss, eval loss, eval accuracy
    assert "Clearly better" in detail and "Slightly better" in detail
    assert f"{trained_run.metrics['eval_accuracy']:.3f}" in detail
    assert reverse("rewardmodel:run_download", args=[trained_run.pk]) in detail
    assert "Score a prompt" in detail

    live = charlie_client.get(reverse("rewardmodel:run_live", args=[trained_run.pk]), **HTMX)
    assert live.status_code == 286  # htmx stops polling
    assert "Succeeded" in live.content.decode()

    list_page = charlie_client.get(reverse("rewardmodel:run_list")).content.decode()
    assert str(trained_run) in list_page and "trained" in list_page


@pytest.mark.django_db
def test_the_downloaded_zip_is_a_model_that_loads(charlie_client, trained_run, tmp_path):
    response = charlie_client.get(reverse("rewardmodel:run_download", args=[trained_run.pk]))

    assert response["Content-Disposition"] == f'attachment; filename="reward-{trained_run.pk}.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert f"reward-{trained_run.pk}/config.json" in archive.namelist()
    archive.extractall(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / f"reward-{trained_run.pk}")
    assert model.config.num_labels == 1


@pytest.mark.django_db
def test_a_run_without_a_model_has_nothing_to_download(charlie_client):
    run = RewardModelRun.objects.create()

    response = charlie_client.get(reverse("rewardmodel:run_download", args=[run.pk]))

    assert response.status_code == 404
    assert b"has no trained model" in response.content


@pytest.mark.django_db
def test_the_score_box_shows_both_rewards(charlie_client, trained_run):
    url = reverse("rewardmodel:run_score", args=[trained_run.pk])

    queued = charlie_client.post(
        url, {"prompt": "tell me about the red cat ?", "response_1": "it is good", "response_2": "it is bad"}, **HTMX
    ).content.decode()
    empty = charlie_client.post(url, {"prompt": "tell me", "response_1": "", "response_2": "x"}, **HTMX)

    job = ScoreJob.objects.get()
    poll = reverse("rewardmodel:score_job", args=[trained_run.pk, job.pk])
    assert f'hx-get="{poll}"' in queued and 'hx-trigger="every 1s"' in queued, "the box polls its job"
    assert "A worker scores with the model" in queued and "Reward of response 1" not in queued
    assert run_score_job(job.pk) == "done"  # the worker's side
    done = charlie_client.get(poll, **HTMX)
    assert done.status_code == 286, "polling stops"
    answer = done.content.decode()
    assert '<div id="score-result"' in answer and "hx-trigger" not in answer
    assert "Reward of response 1:" in answer and "reward of response 2:" in answer
    assert "The model prefers response" in answer
    assert "<html" not in answer  # just the partial
    assert "Enter both responses." in empty.content.decode()


@pytest.mark.django_db
def test_cancel_button_asks_a_running_run_to_stop(charlie_client, charlie, alice):
    run = start_reward_run(charlie, [judged_batch("b", alice, items=2)], dispatch=False)
    run.claim()
    run.record_progress(3, 12, "training")

    running_page = charlie_client.get(run.get_absolute_url()).content.decode()
    live = charlie_client.get(reverse("rewardmodel:run_live", args=[run.pk]), **HTMX)
    response = charlie_client.post(reverse("rewardmodel:run_cancel", args=[run.pk]), follow=True)

    assert 'hx-trigger="every 2s"' in running_page
    assert "Step 3 of 12 (25%)" in running_page and "Cancel run" in running_page
    assert live.status_code == 200  # keep polling
    run.refresh_from_db()
    assert run.cancel_requested and run.status == RunStatus.RUNNING
    assert "cancel requested" in response.content.decode()
    assert "(stopping…)" in response.content.decode() and "Cancel run" not in response.content.decode()


def test_a_poll_fails_a_run_whose_worker_went_silent_and_offers_to_resume_it(charlie_client, charlie, alice, settings):
    settings.RUN_STALE_MINUTES = 3
    run = start_reward_run(charlie, [judged_batch("b", alice, items=2)], dispatch=False)
    run.claim()
    long_ago = timezone.now() - timedelta(minutes=40)
    RewardModelRun.objects.filter(pk=run.pk).update(heartbeat_at=long_ago, worker="gpu-box:4242", step=3)
    run.log(3, {"loss": 0.5})

    live = charlie_client.get(reverse("rewardmodel:run_live", args=[run.pk]), **HTMX)

    assert live.status_code == 286  # the run is over: polling stops
    page = live.content.decode()
    assert "no heartbeat from gpu-box:4242 for 40 min" in page
    assert "Resume (from the start: no checkpoint yet)" in page
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.worker_lost_at is not None

    response = charlie_client.post(reverse("rewardmodel:run_resume", args=[run.pk]), follow=True)

    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.resumes == 1 and run.step == 0 and not run.error
    assert not run.logs.exists()  # trained again from the start
    assert "is queued again" in response.content.decode()
    again = charlie_client.post(reverse("rewardmodel:run_resume", args=[run.pk]), follow=True)
    assert "cannot be resumed" in again.content.decode()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_start_watch_and_finish_through_the_worker(celery_worker, charlie_client, alice, tiny_backbone):
    batch = judged_batch("judged", alice)
    form = {
        "batches": [batch.pk],
        "backbone": tiny_backbone,
        "epochs": 2,
        "learning_rate": 1e-3,
        "batch_size": 4,
        "eval_fraction": 0.25,
        "margin": "level",
        "aggregate": "each",
    }

    started = charlie_client.post(reverse("rewardmodel:run_new"), form)

    run = RewardModelRun.objects.get()
    assert started.status_code == 302 and started["Location"] == run.get_absolute_url()
    page = charlie_client.get(started["Location"]).content.decode()
    assert reverse("rewardmodel:run_live", args=[run.pk]) in page
    assert run.config["margin"] == "level" and run.created_by.username == "charlie"

    live_url = reverse("rewardmodel:run_live", args=[run.pk])
    last = wait_for(
        lambda: (r := charlie_client.get(live_url, **HTMX)).status_code == 286 and r,
        timeout=60,
        message=f"the live panel to report the end\n{celery_worker.log()}",
    )
    assert "Succeeded" in last.content.decode(), last.content.decode()
    assert "Clearly better" in last.content.decode()


# Live page: phase, finished state, charts --------------------------------------------------------


@pytest.mark.django_db
def test_a_loading_run_says_what_it_is_doing_instead_of_step_zero(charlie_client, charlie, alice):
    run = start_reward_run(charlie, [judged_batch("b", alice, items=2)], dispatch=False)
    RewardModelRun.objects.filter(pk=run.pk).update(dispatched_at=timezone.now())  # sent, as a worker would find it
    queued = charlie_client.get(run.get_absolute_url()).content.decode()
    run.claim()
    loading = charlie_client.get(reverse("rewardmodel:run_live", args=[run.pk]), **HTMX).content.decode()
    run.record_progress(0, 0, "tokenizing")
    tokenizing = charlie_client.get(reverse("rewardmodel:run_live", args=[run.pk]), **HTMX).content.decode()
    run.record_progress(1, 1, "evaluating", eta_seconds=0)
    evaluating = charlie_client.get(reverse("rewardmodel:run_live", args=[run.pk]), **HTMX).content.decode()

    assert "Waiting for a worker (queue gpu) to start it…" in queued
    assert "Loading the model…" in loading and "Step 0" not in loading and "(0%)" not in loading
    assert "Tokenizing the data…" in tokenizing and "Step" not in tokenizing
    assert "Evaluating on held-out data… Step 1 of 1 (100%) · finishing the evaluation" in evaluating


@pytest.mark.django_db
def test_the_last_poll_stops_polling_and_reloads_the_page(charlie_client, charlie, alice):
    run = start_reward_run(charlie, [judged_batch("b", alice, items=2)], dispatch=False)
    run.claim()
    running = charlie_client.get(reverse("rewardmodel:run_live", args=[run.pk]), **HTMX)
    run.mark_succeeded({"eval_accuracy": 0.75}, "/nowhere")
    finished = charlie_client.get(reverse("rewardmodel:run_live", args=[run.pk]), **HTMX)

    assert running.status_code == 200 and "HX-Refresh" not in running.headers
    # 286 stops the polling; HX-Refresh brings in what only a finished run's page has (and drops old messages).
    assert finished.status_code == 286 and finished.headers["HX-Refresh"] == "true"


@pytest.mark.django_db
def test_a_chart_of_one_point_draws_a_dot_and_labels_its_axes(charlie_client, charlie, alice):
    run = start_reward_run(charlie, [judged_batch("b", alice, items=2)], dispatch=False)
    run.claim()
    run.log(1, {"loss": 0.69, "eval_loss": 0.7, "eval_accuracy": 0.5})
    run.mark_succeeded({"eval_accuracy": 0.5}, "/nowhere")

    page = charlie_client.get(run.get_absolute_url()).content.decode()

    accuracy = page[page.index('aria-label="Eval accuracy"') :]
    accuracy = accuracy[: accuracy.index("</svg>")]
    assert accuracy.count("<circle") == 1
    assert "eval accuracy at step 1: 0.5" in accuracy
    assert ">step</text>" in accuracy and ">accuracy</text>" in accuracy
    loss = page[page.index('aria-label="Loss"') :]
    loss = loss[: loss.index("</svg>")]
    assert loss.count("<circle") == 2 and ">loss</text>" in loss


def test_line_chart_dots_each_point_of_a_short_series_only():
    from runs.dashboard import MAX_DOTS_PER_LINE, line_chart

    chart = line_chart(
        [("one", "eval", [(3, 0.5)]), ("long", "train", [(step, 1.0 / step) for step in range(1, 200)])], "loss"
    )
    one, long = chart["lines"]
    assert one["single"] and len(one["dots"]) == 1
    assert long["dots"] == [] and MAX_DOTS_PER_LINE < 199
    assert (chart["x_label"], chart["y_label"]) == ("step", "loss")
    assert line_chart([("none", "eval", [])], "loss") is None


@pytest.mark.django_db
def test_run_page_counts_are_singular_for_one(charlie_client, charlie, alice):
    run = start_reward_run(charlie, [judged_batch("b", alice, items=2)], dispatch=False, epochs=1)
    run.claim()
    RewardModelRun.objects.filter(pk=run.pk).update(step=1, total_steps=1, pairs_count=1)
    run.mark_succeeded({"eval_accuracy": 1.0}, "/nowhere")

    page = charlie_client.get(run.get_absolute_url()).content.decode()

    assert "1 epoch," in page and "(1 step, 1 pair)." in page
    assert "(s)" not in page


@pytest.mark.django_db
def test_a_run_page_says_how_many_pairs_each_accuracy_is_of_and_names_its_backbone(charlie_client):
    run = RewardModelRun.objects.create(
        status=RunStatus.SUCCEEDED,
        finished_at=timezone.now(),
        config={"backbone": "/venv/lib/python3.11/site-packages/some_package/tiny-reward-backbone"},
        metrics={
            "eval_accuracy": 0.5,
            "eval_pairs": 8,
            "eval_accuracy_clear": 0.6,
            "eval_pairs_clear": 5,
            "eval_accuracy_slight": 0.0,
            "eval_pairs_slight": 3,
        },
    )
    page = charlie_client.get(run.get_absolute_url()).content.decode()
    levels = page[page.index("Eval accuracy per rating level") :]
    assert '<td>Slightly better</td><td>3</td><td>0.000 <span class="muted">of 3 pairs</span>' in levels
    assert '<td>All pairs</td><td>8</td><td>0.500 <span class="muted">of 8 pairs</span>' in levels
    backbone = page[page.index('id="backbone"') :]
    assert (
        '<span title="/venv/lib/python3.11/site-packages/some_package/tiny-reward-backbone">tiny-reward-backbone</span>'
        in backbone
    )
    assert "<summary>path</summary>" in backbone


@pytest.mark.django_db
def test_lineage_shows_what_each_run_used_not_todays_counts(charlie_client, alice):
    from annotate.models import Item, Judgment
    from policy.lineage import lineage_of

    batch = Batch.objects.create(name="grows")
    items = [
        Item.objects.create(
            batch=batch, external_id=str(i), prompt=[{"role": "user", "content": "q"}], response_1="a", response_2="b"
        )
        for i in range(6)
    ]
    for item in items[:3]:
        Judgment.objects.create(item=item, annotator=alice, rating=1)
    run = RewardModelRun.objects.create(status=RunStatus.SUCCEEDED, judgments_count=3, pairs_count=3)
    run.batches.set([batch])
    for item in items[3:]:  # judged after the run started
        Judgment.objects.create(item=item, annotator=alice, rating=-1)

    figures = {step.obj: dict(step.figures) for step in lineage_of(run)}
    assert figures[run]["trained on"] == "3 judgments → 3 pairs"
    assert figures[batch]["pairwise judgments now"] == "6"
