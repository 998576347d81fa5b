"""Reward runs without a worker: state changes, the pairs that go in, and training in this process."""

from __future__ import annotations

import json
import socket
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotate.models import Batch, Item, Judgment, Rating
from rewardmodel.models import RewardModelRun
from rewardmodel.services import (
    RewardRunError,
    cancel_reward_run,
    preference_pairs,
    run_reward_training,
    score_with_run,
    start_reward_run,
)
from runs import models as runs
from runs.models import RunStatus
from tests.rewardmodel.helpers import build_tiny_backbone, judged_batch

TINY = {"epochs": 2, "batch_size": 4, "eval_fraction": 0.25, "log_every": 1, "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


@pytest.fixture
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.ARTIFACTS_DIR


def _queued_run(**fields) -> RewardModelRun:
    return RewardModelRun.objects.create(**fields)


# State changes -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_only_one_claim_of_a_queued_run_wins():
    run = _queued_run()
    same_row = RewardModelRun.objects.get(pk=run.pk)

    assert run.claim() is True
    assert same_row.claim() is False
    assert same_row.status == RunStatus.RUNNING
    assert run.started_at is not None


@pytest.mark.django_db
def test_cancelling_a_queued_run_ends_it_and_it_can_no_longer_be_claimed():
    run = _queued_run()

    assert cancel_reward_run(run) is True
    assert run.status == RunStatus.CANCELLED
    assert run.finished_at is not None
    assert run.claim() is False


@pytest.mark.django_db
def test_cancelling_a_running_run_asks_the_trainer_to_stop():
    run = _queued_run()
    run.claim()
    trainer_view = RewardModelRun.objects.get(pk=run.pk)
    assert trainer_view.should_stop() is False

    assert cancel_reward_run(run) is True

    assert run.status == RunStatus.RUNNING  # still running until the trainer notices
    assert trainer_view.should_stop() is True


@pytest.mark.django_db
def test_a_finished_run_keeps_its_status():
    run = _queued_run()
    run.claim()
    run.mark_cancelled()

    assert run.mark_failed("late error") is False
    assert run.mark_succeeded({"eval_accuracy": 1.0}, "/nowhere") is False
    assert cancel_reward_run(run) is False
    run.refresh_from_db()
    assert (run.status, run.error, run.metrics) == (RunStatus.CANCELLED, "", {})


@pytest.mark.django_db
def test_progress_and_eta_follow_the_steps_done():
    run = _queued_run()
    run.claim()
    ticks = iter([100.0, 102.0])
    on_progress = run.progress_recorder(clock=lambda: next(ticks))
    on_progress(24, 100, "training")
    assert run.eta is None, "no pace before two steps"
    on_progress(25, 100, "training")  # 2 s a step, 75 steps left
    run.refresh_from_db()

    assert run.progress_percent == 25
    assert timedelta(seconds=140) <= run.eta <= timedelta(seconds=150)
    run.mark_succeeded({}, "")
    assert run.progress_percent == 100
    assert run.eta is None


@pytest.mark.django_db
def test_the_stop_checker_beats_at_the_heartbeat_setting(settings):
    run = _queued_run()
    run.claim()
    long_ago = timezone.now() - timedelta(hours=1)
    RewardModelRun.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    settings.RUN_HEARTBEAT_SECONDS = 0  # one setting for the thread and the stop checker
    run.stop_checker()()
    run.refresh_from_db()
    assert run.heartbeat_at > long_ago


def test_step_pace_measures_the_recent_window_and_ignores_repeats():
    pace = runs.StepPace(window=3)
    assert pace.seconds_left(10) is None
    pace.add(0, 100.0)  # loading took 100 s before this: it never counts
    assert pace.seconds_left(10) is None
    pace.add(1, 102.0)
    assert pace.seconds_left(10) == pytest.approx(18.0)
    pace.add(1, 150.0)  # the same step again (an eval report): nothing new
    assert pace.seconds_left(10) == pytest.approx(18.0)
    for step, at in ((2, 104.0), (3, 106.0), (4, 107.0), (5, 108.0)):
        pace.add(step, at)
    # The window is the last 3 steps (2 -> 5): 4 s for 3 steps.
    assert pace.seconds_left(10) == pytest.approx(5 * (108.0 - 104.0) / 3)


@pytest.mark.django_db
def test_eta_counts_down_from_the_last_report_and_never_grows_between_reports():
    run = _queued_run()
    run.claim()
    run.record_progress(10, 100, "training", eta_seconds=600)
    etas = []
    for seconds_since_report in (0, 30, 90, 700):  # polls while the trainer reports nothing new
        reported_at = timezone.now() - timedelta(seconds=seconds_since_report)
        RewardModelRun.objects.filter(pk=run.pk).update(progress_at=reported_at)
        run.refresh_from_db()
        etas.append(run.eta)
    assert etas[0] >= etas[1] >= etas[2] >= etas[3] == timedelta(0)
    assert timedelta(seconds=505) <= etas[2] <= timedelta(seconds=515)


@pytest.mark.django_db
def test_progress_recorder_saves_every_step_with_its_phase_and_a_windowed_eta():
    run = _queued_run()
    run.claim()
    assert run.phase == runs.RunPhase.LOADING and not run.shows_steps
    clock = iter([200.0, 202.0, 204.0, 204.5]).__next__  # read for training steps only
    on_progress = run.progress_recorder(clock=clock)

    on_progress(0, 0, "loading")
    on_progress(0, 0, "tokenizing")
    run.refresh_from_db()
    assert (run.phase, run.eta) == ("tokenizing", None)
    on_progress(0, 50, "training")
    on_progress(1, 50, "training")
    run.refresh_from_db()
    assert (run.step, run.total_steps, run.phase) == (1, 50, "training") and run.shows_steps
    assert run.eta_seconds == pytest.approx(49 * 2.0), "2 s a step, not the 200 s of loading"
    on_progress(2, 50, "training")
    on_progress(2, 50, "evaluating")
    run.refresh_from_db()
    assert (run.step, run.phase) == (2, "evaluating")
    assert run.eta_seconds == pytest.approx(48 * 2.0)


@pytest.mark.django_db
def test_the_eta_counts_the_evaluations_still_to_come_at_their_measured_pace():
    """A run of 4 steps of 2 s with an evaluation of 10 answers after steps 2 and 4: the ETA counts the 20 answers
    (guessed from the training pace until the first evaluation measured 1 s an answer), and the evaluation's own
    progress is saved and shown."""
    run = _queued_run()
    run.claim()
    now = [100.0]
    plan = runs.EvaluationPlan(answers_from=lambda step: 10 * ((4 - max(step, 1)) // 2 + 1), answers_per_step=4)
    on_progress = run.progress_recorder(clock=lambda: now[0], evaluations=plan)

    def report(at: float, *args) -> runs.TrainingRun:
        now[0] = at
        on_progress(*args)
        run.refresh_from_db()
        return run

    report(100, 0, 4, "training")
    # 2 s a step; before any evaluation an answer is guessed at 2 s / 4 answers a step.
    assert report(102, 1, 4, "training").eta_seconds == pytest.approx(3 * 2.0 + 20 * 0.5)
    assert report(104, 2, 4, "training").eta_seconds == pytest.approx(2 * 2.0 + 20 * 0.5)
    report(104, 2, 4, "evaluating", 0, 10)
    run = report(109, 2, 4, "evaluating", 5, 10)  # 1 s an answer, measured
    assert (run.phase_done, run.phase_total) == (5, 10)
    assert run.eta_seconds == pytest.approx(5 * 1.0 + 2 * 2.0 + 10 * 1.0)
    assert run.phase_progress_text == "Evaluating on held-out data: 5 of 10 answers (after step 2 of 4)"
    assert run.bar_percent == 50
    report(114, 2, 4, "evaluating", 10, 10)
    run = report(114, 2, 4, "training")
    assert (run.phase_done, run.phase_total) == (None, None)
    assert run.eta_seconds == pytest.approx(2 * 2.0 + 10 * 1.0)
    # The 10 s of evaluation are not the step's pace: step 3 took 2 s.
    assert report(116, 3, 4, "training").eta_seconds == pytest.approx(1 * 2.0 + 10 * 1.0)


# Pairs from judgments ----------------------------------------------------------------------------


@pytest.fixture
def contested_batch(alice, bob, charlie) -> Batch:
    """Item a: all three pick response 2 (two clearly); item b: a 1-1 tie; item c: 2 of 3 pick response 1 slightly."""
    batch = Batch.objects.create(name="contested")
    prompt = [{"role": "user", "content": "Pick one"}]
    a = Item.objects.create(batch=batch, external_id="a", prompt=prompt, response_1="a1", response_2="a2")
    b = Item.objects.create(batch=batch, external_id="b", prompt=prompt, response_1="b1", response_2="b2")
    c = Item.objects.create(
        batch=batch, external_id="c", prompt=prompt, prompt_input="extra", response_1="c1", response_2="c2"
    )
    for item, ratings in ((a, (2, 2, 1)), (b, (-2, 2, None)), (c, (-1, -1, 2))):
        for annotator, rating in zip((alice, bob, charlie), ratings, strict=True):
            if rating is not None:
                Judgment.objects.create(item=item, annotator=annotator, rating=Rating(rating))
    return batch


@pytest.mark.django_db
def test_each_judgment_is_a_pair_in_the_direction_it_was_given(contested_batch):
    pairs = preference_pairs([contested_batch], "each")

    assert len(pairs) == 8
    assert [(p.chosen, p.rejected, p.level) for p in pairs[:3]] == [
        ("a2", "a1", "clear"),
        ("a2", "a1", "clear"),
        ("a2", "a1", "slight"),
    ]
    item_c_pair = next(p for p in pairs if p.chosen == "c1")
    assert item_c_pair.prompt == [{"role": "user", "content": "Pick one\n\nextra"}]
    # Items with the same prompt text share a group: the eval split keeps them together.
    assert pairs[0].group == pairs[3].group != item_c_pair.group


@pytest.mark.django_db
def test_majority_gives_one_pair_per_item_and_drops_ties(contested_batch):
    pairs = preference_pairs([contested_batch], "majority")

    assert [(p.chosen, p.rejected, p.level) for p in pairs] == [("a2", "a1", "clear"), ("c1", "c2", "slight")]


@pytest.mark.django_db
def test_excluded_annotators_judgments_are_left_out(contested_batch, charlie):
    pairs = preference_pairs([contested_batch], "each", exclude_annotators=[charlie])

    assert len(pairs) == 6


@pytest.mark.django_db
def test_exclude_flagged_leaves_out_annotators_the_quality_page_flags(contested_batch, charlie):
    # alice and bob take their time; charlie clicks through in under a second per item (flagged "too fast").
    Judgment.objects.exclude(annotator=charlie).update(time_ms=20_000)
    Judgment.objects.filter(annotator=charlie).update(time_ms=500)

    run = start_reward_run(charlie, [contested_batch], exclude_flagged=True, dispatch=False)

    assert run.config["exclude_flagged"] is True
    assert run.config["exclude_annotators"] == [charlie.pk]
    assert run.judgments_count == 6, "charlie's two judgments are left out"
    everyone = start_reward_run(charlie, [contested_batch], dispatch=False)
    assert everyone.judgments_count == 8


# Starting ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_starting_a_run_on_batches_without_judgments_is_refused(charlie):
    empty = Batch.objects.create(name="empty")

    with pytest.raises(RewardRunError, match="No judgments to train on in batch empty"):
        start_reward_run(charlie, [empty])
    with pytest.raises(RewardRunError, match="Pick at least one batch"):
        start_reward_run(charlie, [])
    assert not RewardModelRun.objects.exists()


@pytest.mark.django_db
def test_bad_training_options_are_refused_by_name(charlie, alice):
    batch = judged_batch("b", alice, items=2)

    with pytest.raises(RewardRunError, match="Unknown training option: epoch"):
        start_reward_run(charlie, [batch], epoch=3)
    with pytest.raises(RewardRunError, match="eval_fraction must be in"):
        start_reward_run(charlie, [batch], eval_fraction=1.5)
    with pytest.raises(RewardRunError, match="margin must be one of"):
        start_reward_run(charlie, [batch], margin="huge")


@pytest.mark.django_db
def test_start_records_what_goes_in_and_sends_the_task_after_commit(charlie, alice, django_capture_on_commit_callbacks):
    batch = judged_batch("b", alice, items=3)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = start_reward_run(charlie, [batch], epochs=3, margin="level")

    assert len(callbacks) == 1
    assert run.status == RunStatus.QUEUED
    assert run.created_by == charlie
    assert list(run.batches.all()) == [batch]
    assert run.config["epochs"] == 3 and run.config["margin"] == "level" and run.config["aggregate"] == "each"
    assert run.judgments_count == 3 and len(run.judgments_hash) == 64

    # The hash changes when a rating does.
    judgment = Judgment.objects.filter(item__batch=batch).first()
    judgment.rating = -judgment.rating
    judgment.save()
    again = start_reward_run(charlie, [batch], dispatch=False)
    assert again.judgments_hash != run.judgments_hash


# Training in this process ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_trains_into_its_artifact_folder_and_logs_its_progress(charlie, alice, tiny_backbone, artifacts):
    run = start_reward_run(charlie, [judged_batch("b", alice)], backbone=tiny_backbone, dispatch=False, **TINY)

    run = run_reward_training(run)

    assert run.status == RunStatus.SUCCEEDED, run.error
    folder = Path(run.artifact_path)
    assert folder == artifacts / f"reward-{run.pk}"
    assert (folder / "config.json").is_file() and (folder / "metrics.json").is_file()
    assert not (artifacts / f"reward-{run.pk}.partial").exists()
    assert run.step == run.total_steps > 0
    assert run.pairs_count == 12
    assert {"eval_accuracy", "eval_accuracy_clear", "eval_accuracy_slight", "eval_pairs"} <= set(run.metrics)
    assert json.loads((folder / "metrics.json").read_text())["eval_pairs"] == run.metrics["eval_pairs"]
    logged_steps = list(run.logs.values_list("step", flat=True))
    assert logged_steps == list(range(1, run.total_steps + 1))
    assert run.curve("loss") and run.curve("eval_accuracy")

    reward_1, reward_2 = score_with_run(run, "tell me about the red cat ?", "good", "bad")
    assert isinstance(reward_1, float) and reward_1 != reward_2


@pytest.mark.django_db
def test_training_a_run_twice_trains_it_once(charlie, alice, tiny_backbone, artifacts):
    run = start_reward_run(charlie, [judged_batch("b", alice)], backbone=tiny_backbone, dispatch=False, **TINY)
    run_reward_training(run)
    logs_after_first = run.logs.count()

    again = run_reward_training(RewardModelRun.objects.get(pk=run.pk))

    assert again.status == RunStatus.SUCCEEDED
    assert run.logs.count() == logs_after_first


@pytest.mark.django_db
def test_a_bad_backbone_fails_the_run_with_the_reason_and_leaves_no_folder(charlie, alice, artifacts, tmp_path):
    not_a_model = tmp_path / "not-a-model"  # inside the model roots (start_reward_run refuses folders outside them)
    not_a_model.mkdir()
    run = start_reward_run(charlie, [judged_batch("b", alice)], backbone=str(not_a_model), dispatch=False)

    run = run_reward_training(run)  # does not raise

    assert run.status == RunStatus.FAILED
    assert "tokenizer" in run.error  # the loader's reason: the folder holds no model
    assert run.finished_at is not None
    assert not (artifacts / f"reward-{run.pk}").exists()
    assert not (artifacts / f"reward-{run.pk}.partial").exists()


@pytest.mark.django_db
def test_a_cancel_request_stops_training_at_the_next_step_and_nothing_is_kept(
    charlie, alice, tiny_backbone, artifacts, monkeypatch
):
    monkeypatch.setattr(runs, "CANCEL_POLL_SECONDS", 0)  # check the flag at every step
    run = start_reward_run(charlie, [judged_batch("b", alice)], backbone=tiny_backbone, dispatch=False, **TINY)

    def cancel_at_first_log(step, metrics):
        cancel_reward_run(RewardModelRun.objects.get(pk=run.pk))

    run = run_reward_training(run, on_log=cancel_at_first_log)

    assert run.status == RunStatus.CANCELLED
    assert run.step == 1 < run.total_steps
    assert not (artifacts / f"reward-{run.pk}").exists()
    assert not (artifacts / f"reward-{run.pk}.partial").exists()


@pytest.mark.django_db
def test_scoring_needs_a_trained_model(charlie, alice):
    run = start_reward_run(charlie, [judged_batch("b", alice, items=2)], dispatch=False)

    with pytest.raises(RewardRunError, match="has no trained model"):
        score_with_run(run, "prompt", "one", "two")


# A worker that died ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_redelivered_task_fails_a_run_whose_worker_process_is_gone(charlie, alice, artifacts):
    run = start_reward_run(charlie, [judged_batch("b", alice)], dispatch=False)
    RewardModelRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(), worker=_dead_worker()
    )

    run_reward_training(run)

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "stopped before it finished" in run.error


@pytest.mark.django_db
def test_a_redelivered_task_leaves_a_run_that_is_still_training_alone(charlie, alice, artifacts):
    run = start_reward_run(charlie, [judged_batch("b", alice)], dispatch=False)
    RewardModelRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(), worker=runs.this_process()
    )

    run_reward_training(run)

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


@pytest.mark.django_db
def test_cancelling_a_run_silent_past_the_stale_time_ends_it_at_once(charlie, alice, settings):
    settings.RUN_STALE_MINUTES = 15
    run = start_reward_run(charlie, [judged_batch("b", alice)], dispatch=False)
    long_ago = timezone.now() - timedelta(minutes=16)
    RewardModelRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=long_ago, heartbeat_at=long_ago, worker="another-host:123"
    )
    run.refresh_from_db()

    assert run.request_cancel() is True
    assert run.status == RunStatus.CANCELLED


def _dead_worker() -> str:
    """A "host:pid" on this host whose process has exited (and been reaped)."""
    probe = subprocess.Popen(["true"])
    probe.wait()
    return f"{socket.gethostname()}:{probe.pid}"


def test_two_runs_on_the_two_prompt_halves_never_share_a_prompt(charlie, alice, tiny_backbone, artifacts):
    from rlhf.prompts import prompt_group_id, prompt_half

    batch = judged_batch("halves", alice, items=24)
    groups = [prompt_group_id(item.chat_messages()) for item in batch.items.all()]
    halves = {half: {g for g in groups if prompt_half(g) == half} for half in ("first", "second")}
    assert halves["first"] and halves["second"] and not halves["first"] & halves["second"]
    runs = {
        half: run_reward_training(
            start_reward_run(charlie, [batch], backbone=tiny_backbone, dispatch=False, split_half=half, **TINY)
        )
        for half in ("first", "second")
    }
    for half, run in runs.items():
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.config["split_half"] == half
        assert run.pairs_count == sum(group in halves[half] for group in groups)  # one judgment per item
    assert runs["first"].pairs_count + runs["second"].pairs_count == 24
