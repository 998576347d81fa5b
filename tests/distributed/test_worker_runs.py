"""Two-process runs through a real Celery worker, as the dashboard starts them: a reward run (DDP, and FSDP) and a
REINFORCE run train to the end; a rank killed mid-run fails its run with the reason and leaves no process behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from policy.models import PolicyRun, PolicySample
from policy.services import start_policy_run
from rewardmodel.models import RewardModelRun
from rewardmodel.services import start_reward_run
from rlhf.distributed import rank_pids
from runs.models import RunStatus
from tests.distributed.test_distributed_training import launched_processes_of, process_alive
from tests.policy.conftest import build_policy
from tests.policy.helpers import TINY_REINFORCE, prompts_batch, succeeded_reward_run
from tests.rewardmodel.helpers import build_tiny_backbone, judged_batch
from tests.worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TWO_PROCESSES = {"epochs": 2, "batch_size": 4, "eval_fraction": 0.25, "log_every": 1, "processes": 2}


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


def fresh(run):
    run.refresh_from_db()
    return run


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_two_process_reward_run_trains_from_the_service(celery_worker, charlie, alice, tiny_backbone, strategy):
    batch = judged_batch("b", alice)
    run = start_reward_run(charlie, [batch], backbone=tiny_backbone, strategy=strategy, **TWO_PROCESSES)

    wait_for(lambda: fresh(run).is_finished, timeout=120, message=f"run {run.pk} to finish\n{celery_worker.log()}")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.config["processes"] == 2 and run.config["strategy"] == strategy
    assert (Path(run.artifact_path) / "model.safetensors").is_file()
    assert run.metrics["eval_pairs"] > 0
    # Rank 0's reports came back as the same rows as an in-process run's: a log row and the position every step.
    assert run.logs.count() == run.total_steps == run.step
    assert not run.launch_dir.exists()


def test_a_killed_rank_fails_the_run_with_the_reason_and_no_process_is_left(
    celery_worker, charlie, alice, tiny_backbone
):
    many_steps = {**TWO_PROCESSES, "epochs": 500, "batch_size": 2}
    run = start_reward_run(charlie, [judged_batch("b", alice, items=20)], backbone=tiny_backbone, **many_steps)
    pids: list[int] = []

    def training_on_two_ranks():
        if fresh(run).status == RunStatus.RUNNING and run.step >= 2:
            pids[:] = rank_pids(run.launch_dir, 2)
            return len(pids) == 2

    wait_for(training_on_two_ranks, timeout=120, message=f"two ranks to train\n{celery_worker.log()}")
    work_dir = run.launch_dir
    os.kill(pids[1], signal.SIGKILL)
    wait_for(lambda: fresh(run).is_finished, timeout=60, message=f"the run to fail\n{celery_worker.log()}")

    assert run.status == RunStatus.FAILED
    assert "DistributedTrainingError" in run.error and "rank : 1" in run.error and "SIGKILL" in run.error, run.error
    assert not any(process_alive(pid) for pid in pids)
    assert not launched_processes_of(work_dir)  # torchrun and every rank: gone
    assert celery_worker.alive
    assert not Path(RewardModelRun.objects.get(pk=run.pk).planned_artifact_dir).exists()


def test_a_two_process_reinforce_run_trains_from_the_service(celery_worker, charlie, tmp_path):
    policy = build_policy(tmp_path / "policy")
    reward_run = succeeded_reward_run(tmp_path / "reward")
    options = {**TINY_REINFORCE, "processes": 2}
    run = start_policy_run(
        charlie, "reinforce", reward_run=reward_run, base_path=policy, data_batch=prompts_batch(), **options
    )

    wait_for(lambda: fresh(run).is_finished, timeout=180, message=f"run {run.pk} to finish\n{celery_worker.log()}")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [step for step, _ in run.curve("reward_mean")] == [1, 2]
    assert (Path(run.artifact_path) / "final" / "config.json").is_file()
    assert run.samples.filter(step=1, kind=PolicySample.Kind.TRAIN).count() == 4  # both ranks' 2 prompts x 2
    assert len(fresh(run).eval_samples) == 2
    assert PolicyRun.objects.get(pk=run.pk).metrics["win_rate"] is not None
