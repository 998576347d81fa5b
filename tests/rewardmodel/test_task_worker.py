"""The training task end to end: a real Celery worker process, the real broker, the test database."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from rewardmodel.models import RewardModelRun
from rewardmodel.services import cancel_reward_run, start_reward_run
from rewardmodel.tasks import train_reward_run
from runs.models import RunStatus
from tests.rewardmodel.helpers import build_tiny_backbone, judged_batch
from tests.worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TINY = {"epochs": 2, "batch_size": 4, "eval_fraction": 0.25, "log_every": 1, "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


def _finished(run: RewardModelRun) -> RewardModelRun | None:
    run.refresh_from_db()
    return run if run.is_finished else None


def test_the_worker_trains_a_started_run_to_a_downloadable_model(celery_worker, charlie, alice, tiny_backbone):
    run = start_reward_run(charlie, [judged_batch("b", alice)], backbone=tiny_backbone, **TINY)

    wait_for(lambda: _finished(run), timeout=60, message=f"run {run.pk} to finish\n{celery_worker.log()}")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (Path(run.artifact_path) / "model.safetensors").is_file()
    assert run.metrics["eval_pairs"] > 0
    assert run.logs.count() == run.total_steps == run.step


def test_a_failed_run_keeps_its_reason_and_the_worker_takes_the_next_one(
    celery_worker, charlie, alice, tiny_backbone, tmp_path
):
    batch = judged_batch("b", alice)
    pid = celery_worker.process.pid
    not_a_model = tmp_path / "not-a-model"  # inside the model roots (start_reward_run refuses folders outside them)
    not_a_model.mkdir()
    broken = start_reward_run(charlie, [batch], backbone=str(not_a_model), **TINY)
    good = start_reward_run(charlie, [batch], backbone=tiny_backbone, **TINY)

    wait_for(lambda: _finished(broken), timeout=60, message=f"the broken run to end\n{celery_worker.log()}")
    wait_for(lambda: _finished(good), timeout=60, message=f"the next run to end\n{celery_worker.log()}")

    assert broken.status == RunStatus.FAILED
    assert "tokenizer" in broken.error  # the loader's reason: the folder holds no model
    assert not Path(broken.artifact_path or "/no/such/artifact").exists()
    assert good.status == RunStatus.SUCCEEDED, good.error
    assert celery_worker.alive and celery_worker.process.pid == pid


def test_cancelling_a_running_run_stops_it_between_steps(celery_worker, charlie, alice, tiny_backbone, settings):
    many_steps = {**TINY, "epochs": 500, "batch_size": 1}
    run = start_reward_run(charlie, [judged_batch("b", alice, items=20)], backbone=tiny_backbone, **many_steps)

    def has_trained_a_few_steps():
        run.refresh_from_db()
        return run.status == RunStatus.RUNNING and run.step >= 3

    wait_for(has_trained_a_few_steps, timeout=60, message=f"training to start\n{celery_worker.log()}")
    assert cancel_reward_run(run) is True
    wait_for(lambda: _finished(run), timeout=20, message=f"the run to stop\n{celery_worker.log()}")

    assert run.status == RunStatus.CANCELLED
    assert 3 <= run.step < run.total_steps
    artifacts = Path(settings.ARTIFACTS_DIR)
    assert not (artifacts / f"reward-{run.pk}").exists()
    assert not (artifacts / f"reward-{run.pk}.partial").exists()


def test_a_task_delivered_twice_trains_once(celery_worker, charlie, alice, tiny_backbone):
    tasks_done_before = celery_worker.log().count("succeeded in")
    run = start_reward_run(charlie, [judged_batch("b", alice)], backbone=tiny_backbone, **TINY)
    train_reward_run.delay(run.pk)  # a duplicate, as a broker redelivery would be

    wait_for(lambda: _finished(run), timeout=60, message=f"run {run.pk} to finish\n{celery_worker.log()}")
    wait_for(
        lambda: celery_worker.log().count("succeeded in") >= tasks_done_before + 2,
        timeout=30,
        message=f"both deliveries to be handled\n{celery_worker.log()}",
    )

    assert run.status == RunStatus.SUCCEEDED
    assert sorted(run.logs.values_list("step", flat=True)) == list(range(1, run.total_steps + 1))


def test_a_run_whose_worker_process_dies_ends_failed_not_running_for_ever(celery_worker, charlie, alice, tiny_backbone):
    many_steps = {**TINY, "epochs": 500, "batch_size": 1}
    run = start_reward_run(charlie, [judged_batch("b", alice, items=20)], backbone=tiny_backbone, **many_steps)

    def training():
        run.refresh_from_db()
        return run.status == RunStatus.RUNNING and run.step >= 2

    wait_for(training, timeout=60, message=f"training to start\n{celery_worker.log()}")
    child_pid = int(run.worker.rpartition(":")[2])
    os.kill(child_pid, signal.SIGKILL)  # as the OOM killer would

    # The parent requeues the unacknowledged task; its redelivery finds the run orphaned and fails it.
    wait_for(lambda: _finished(run), timeout=60, message=f"the orphaned run to end\n{celery_worker.log()}")
    assert run.status == RunStatus.FAILED
    assert "stopped before it finished" in run.error
    assert celery_worker.alive


def test_a_killed_worker_main_process_is_noticed_at_once_and_the_run_resumes(
    celery_worker, charlie, alice, tiny_backbone
):
    checkpointed = {**TINY, "epochs": 40, "batch_size": 1, "checkpoint_every": 5}
    run = start_reward_run(charlie, [judged_batch("b", alice, items=8)], backbone=tiny_backbone, **checkpointed)

    def past_a_checkpoint():
        run.refresh_from_db()
        return run.status == RunStatus.RUNNING and run.step >= 7

    wait_for(past_a_checkpoint, timeout=60, message=f"training to pass a checkpoint\n{celery_worker.log()}")
    os.killpg(celery_worker.process.pid, signal.SIGKILL)  # the whole worker: main process and pool child
    celery_worker.process.wait(10)

    # What every dashboard poll of the running run does (same host: the process is seen to be gone). "is gone" says
    # the process check caught it, not the RUN_STALE_MINUTES silence limit; the time it takes is measured by
    # bench/bench_worker_kills.py, not asserted here (shared CI machines are noisy).
    wait_for(lambda: run.check_worker() or None, timeout=10, message="a poll to notice the dead worker")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.can_resume and "is gone" in run.error
    resume_step = run.resume_step
    assert resume_step and resume_step % 5 == 0

    celery_worker.__init__()
    celery_worker.start()
    assert run.resume() is True
    wait_for(lambda: _finished(run), timeout=90, message=f"the resumed run to finish\n{celery_worker.log()}")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert sorted(run.logs.values_list("step", flat=True)) == list(range(1, run.total_steps + 1))
    assert not run.resume_dir.exists()
