"""The policy task end to end through a real Celery worker process: train, and cancel."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy.models import PolicyRun, PolicySample
from policy.services import artifact_dir_for, cancel_policy_run, start_policy_run
from runs.models import RunStatus
from tests.policy.helpers import TINY_REINFORCE, prompts_batch, succeeded_reward_run
from tests.worker import wait_for

pytestmark = pytest.mark.worker


def fresh(run: PolicyRun) -> PolicyRun:
    run.refresh_from_db()
    return run


def test_worker_trains_a_queued_run_to_a_model_with_curves_and_samples(celery_worker, charlie, tiny_policy, tmp_path):
    reward_run = succeeded_reward_run(tmp_path / "reward")
    run = start_policy_run(
        charlie, "reinforce", reward_run=reward_run, base_path=tiny_policy, data_batch=prompts_batch(), **TINY_REINFORCE
    )
    assert run.status == RunStatus.QUEUED

    wait_for(lambda: fresh(run).is_finished, timeout=120, message=f"run to finish\n{celery_worker.log()}")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.step, run.total_steps) == (2, 2)

    # Curves: one log row per step, the eval metrics on the eval step.
    assert [step for step, _ in run.curve("reward_mean")] == [1, 2]
    assert [step for step, _ in run.curve("eval_win_rate")] == [2]
    assert {"reward_policy", "reward_reference", "win_rate", "kl"} <= set(run.metrics)

    # The sample browser's rows: rollouts every step, policy and reference on the held-out prompts.
    kinds = set(run.samples.values_list("kind", flat=True))
    assert kinds == {PolicySample.Kind.TRAIN, PolicySample.Kind.EVAL, PolicySample.Kind.REFERENCE}
    assert run.samples.filter(step=1, kind="train").count() == 4  # 2 prompts x 2 samples

    # A whole model under the final name, checkpoints beside it, nothing half-written left over.
    folder = Path(run.artifact_path)
    assert folder == artifact_dir_for(run)
    assert (folder / "final" / "config.json").is_file()
    assert run.checkpoint_names()[0] == "final"
    assert "checkpoint-1" in run.checkpoint_names()
    assert not folder.with_name(folder.name + ".partial").exists()
    assert len(run.eval_samples) == run.config["eval_prompts"] == 2


def test_cancel_stops_a_running_run_and_keeps_no_model(celery_worker, charlie, tiny_policy, tmp_path):
    reward_run = succeeded_reward_run(tmp_path / "reward")
    run = start_policy_run(
        charlie,
        "reinforce",
        reward_run=reward_run,
        base_path=tiny_policy,
        data_batch=prompts_batch(),
        **{**TINY_REINFORCE, "steps": 5000, "eval_every": 1000, "checkpoint_every": 1000},
    )
    wait_for(lambda: fresh(run).step >= 1, timeout=120, message=f"first step\n{celery_worker.log()}")
    assert run.status == RunStatus.RUNNING

    assert cancel_policy_run(run)

    wait_for(lambda: fresh(run).is_finished, timeout=60, message="the run to stop")
    assert run.status == RunStatus.CANCELLED
    assert run.step < 5000
    folder = artifact_dir_for(run)
    assert not folder.exists()
    assert not folder.with_name(folder.name + ".partial").exists()
    assert run.artifact_path == ""


def test_a_failure_is_recorded_with_its_reason(celery_worker, charlie, tmp_path):
    reward_run = succeeded_reward_run(tmp_path / "reward")
    (tmp_path / "no-such-model").mkdir()  # inside the model roots (the start refuses folders outside), no model in it
    run = start_policy_run(
        charlie,
        "reinforce",
        reward_run=reward_run,
        base_path=str(tmp_path / "no-such-model"),
        data_batch=prompts_batch(),
        **TINY_REINFORCE,
    )
    wait_for(lambda: fresh(run).is_finished, timeout=60, message=f"run to finish\n{celery_worker.log()}")
    assert run.status == RunStatus.FAILED
    assert "tokenizer" in run.error  # the loader's reason: the folder holds no model
    assert celery_worker.alive
