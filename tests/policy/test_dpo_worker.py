"""A DPO run through a real Celery worker process: to a downloadable model with its card, cancel, and resume after
the worker was killed."""

from __future__ import annotations

import io
import os
import signal
import zipfile

import pytest

from policy.models import PolicyRun
from policy.services import cancel_policy_run, start_policy_run
from runs.models import RunStatus
from tests.policy.helpers import judged_batch
from tests.worker import wait_for

pytestmark = pytest.mark.worker

TINY_DPO = {"epochs": 2, "batch_size": 2, "learning_rate": 1e-3, "beta": 0.5, "checkpoint_every": 2}


def _finished(run: PolicyRun) -> PolicyRun | None:
    run.refresh_from_db()
    return run if run.is_finished else None


def test_worker_trains_a_dpo_run_to_a_downloadable_model_with_its_card(
    celery_worker, charlie, alice, tiny_chat_policy, client
):
    run = start_policy_run(charlie, "dpo", base_path=tiny_chat_policy, data_batch=judged_batch([alice]), **TINY_DPO)
    wait_for(lambda: _finished(run), timeout=120, message=f"run to finish\n{celery_worker.log()}")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.step == run.total_steps == 2 * -(-run.config["train_pairs"] // 2)
    assert [step for step, _ in run.curve("loss")] == list(range(1, run.total_steps + 1))
    assert run.checkpoint_names()[:2] == ["final", "checkpoint-2"]

    client.force_login(charlie)
    response = client.get(f"/dashboard/policy/{run.pk}/download/final/")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = {name.rsplit("/", 1)[-1] for name in archive.namelist()}
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= names
    card = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("README.md"))
    assert "direct preference optimization (DPO, β=0.5)" in card


def test_cancel_stops_a_running_dpo_run(celery_worker, charlie, alice, tiny_chat_policy):
    long = {**TINY_DPO, "epochs": 1000, "batch_size": 1, "checkpoint_every": 0}
    run = start_policy_run(charlie, "dpo", base_path=tiny_chat_policy, data_batch=judged_batch([alice]), **long)
    wait_for(lambda: run.refresh_from_db() or run.step >= 1, timeout=120, message=f"a step\n{celery_worker.log()}")
    assert cancel_policy_run(run)
    wait_for(lambda: _finished(run), timeout=60, message="the run to stop")
    assert run.status == RunStatus.CANCELLED and run.step < run.total_steps and run.artifact_path == ""


def test_a_dpo_run_whose_worker_was_killed_resumes_to_the_end(celery_worker, charlie, alice, tiny_chat_policy):
    checkpointed = {**TINY_DPO, "epochs": 30, "batch_size": 1, "checkpoint_every": 5}
    run = start_policy_run(charlie, "dpo", base_path=tiny_chat_policy, data_batch=judged_batch([alice]), **checkpointed)

    def past_a_checkpoint():
        run.refresh_from_db()
        return run.status == RunStatus.RUNNING and run.step >= 7

    wait_for(past_a_checkpoint, timeout=120, message=f"training to pass a checkpoint\n{celery_worker.log()}")
    os.killpg(celery_worker.process.pid, signal.SIGKILL)
    celery_worker.process.wait(10)
    wait_for(lambda: run.check_worker() or None, timeout=10, message="a poll to notice the dead worker")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.can_resume and run.resume_step and run.resume_step % 5 == 0

    celery_worker.__init__()
    celery_worker.start()
    assert run.resume() is True
    wait_for(lambda: _finished(run), timeout=180, message=f"the resumed run to finish\n{celery_worker.log()}")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert sorted(run.logs.values_list("step", flat=True)) == list(range(1, run.total_steps + 1))
