"""Resume instead of restart: a reward run that loses its worker continues from its last resumable checkpoint and
ends with exactly the model an uninterrupted run trains (same seed, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rewardmodel.models import RewardModelRun
from rewardmodel.services import run_reward_training, start_reward_run
from runs.models import RunStatus
from tests.rewardmodel.helpers import build_tiny_backbone, judged_batch

# 9 training pairs in batches of 4: 3 steps an epoch, 9 in all; a resumable checkpoint every 2 steps.
TINY = {"epochs": 3, "batch_size": 4, "eval_fraction": 0.25, "log_every": 1, "learning_rate": 1e-3, "seed": 7}
CHECKPOINTED = {**TINY, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.ARTIFACTS_DIR


def killed_at(step: int):
    """An on_log that takes the process down after `step` is logged, as a worker shutdown would."""

    def on_log(at: int, metrics: dict) -> None:
        if at == step:
            raise KeyboardInterrupt

    return on_log


def weights(run: RewardModelRun) -> dict[str, torch.Tensor]:
    return load_file(Path(run.artifact_path) / "model.safetensors")


@pytest.mark.django_db
def test_a_run_that_lost_its_worker_resumes_to_the_same_model(charlie, alice, tiny_backbone, artifacts):
    batch = judged_batch("b", alice)
    uninterrupted = run_reward_training(
        start_reward_run(charlie, [batch], backbone=tiny_backbone, dispatch=False, **CHECKPOINTED)
    )
    run = start_reward_run(charlie, [batch], backbone=tiny_backbone, dispatch=False, **CHECKPOINTED)

    with pytest.raises(KeyboardInterrupt):
        run_reward_training(run, on_log=killed_at(5))  # mid-epoch 2; the last checkpoint is after step 4

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.can_resume
    assert "stopped before it finished" in run.error
    assert run.resume_step == 4 and run.resume_checkpoint.is_file()
    assert not (artifacts / f"reward-{run.pk}").exists()

    assert run.resume() is True
    assert run.status == RunStatus.QUEUED and run.step == 4 and run.resumes == 1
    assert sorted(run.logs.values_list("step", flat=True)) == [1, 2, 3, 4]  # step 5 is trained again
    run_reward_training(run)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert uninterrupted.status == RunStatus.SUCCEEDED
    # Exactly the same on CPU: same losses step by step, same final metrics, bit-identical weights.
    assert run.curve("loss") == uninterrupted.curve("loss")
    assert sorted(run.logs.values_list("step", flat=True)) == list(range(1, 10))
    for key in ("train_loss", "eval_loss", "eval_accuracy"):
        assert run.metrics[key] == uninterrupted.metrics[key], key
    expected = weights(uninterrupted)
    actual = weights(run)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    assert not run.resume_dir.exists()  # removed once the run succeeded


@pytest.mark.django_db
def test_a_run_without_a_checkpoint_resumes_from_the_start(charlie, alice, tiny_backbone):
    run = start_reward_run(charlie, [judged_batch("b", alice)], backbone=tiny_backbone, dispatch=False, **TINY)
    with pytest.raises(KeyboardInterrupt):
        run_reward_training(run, on_log=killed_at(1))
    run.refresh_from_db()
    assert run.resume_step is None  # checkpoint_every 50 > 9 steps

    assert run.resume() is True
    assert run.step == 0 and not run.logs.exists()
    run_reward_training(run)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert sorted(run.logs.values_list("step", flat=True)) == list(range(1, 10))


@pytest.mark.django_db
def test_a_failed_or_cancelled_run_cannot_be_resumed(charlie, alice, tiny_backbone, tmp_path):
    (tmp_path / "not-a-model").mkdir()  # inside the model roots, and no model in it: the run fails
    broken = start_reward_run(
        charlie, [judged_batch("b", alice)], backbone=str(tmp_path / "not-a-model"), dispatch=False
    )
    run_reward_training(broken)
    broken.refresh_from_db()

    assert broken.status == RunStatus.FAILED and not broken.can_resume
    assert broken.resume() is False
    assert not broken.resume_dir.exists()
