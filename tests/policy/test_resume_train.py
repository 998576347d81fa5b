"""Resumable checkpoints in the Django-free policy trainers: stop REINFORCE or SFT after k steps as a killed worker
would, call the trainer again with the same resume path, and get exactly the uninterrupted run's result (CPU)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from policy.reinforce import ReinforceConfig, SFTConfig, train_reinforce, train_sft
from tests.policy.test_reinforce_train import EVAL_PROMPTS, PROMPTS, count_a
from tests.policy.test_sft import DIALOGUE


class Killed(BaseException):
    """The process going away mid-run (nothing after the last checkpoint survives)."""


def killed_at(step: int):
    def on_log(at: int, metrics: dict) -> None:
        if at == step:
            raise Killed

    return on_log


def losses_by_step(logs: list[dict]) -> dict[int, float]:
    return {metrics["step"]: metrics["loss"] for metrics in logs}


def same_weights(a, b) -> bool:
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_reinforce_resumed_after_a_kill_ends_as_the_uninterrupted_run(tiny_policy, tmp_path):
    config = ReinforceConfig(
        steps=5, prompts_per_step=2, samples_per_prompt=2, max_new_tokens=5, learning_rate=1e-2,
        eval_every=2, checkpoint_every=2, seed=3,
    )  # fmt: skip
    whole_logs: list[dict] = []
    whole = train_reinforce(
        tiny_policy, count_a, PROMPTS, EVAL_PROMPTS, config, tmp_path / "whole",
        on_log=lambda step, metrics: whole_logs.append(metrics), resume_path=tmp_path / "whole.resume" / "resume.pt",
    )  # fmt: skip
    resume_path = tmp_path / "run.resume" / "resume.pt"
    logs: list[dict] = []

    def on_log(step: int, metrics: dict) -> None:
        logs.append(metrics)
        killed_at(3)(step, metrics)

    with pytest.raises(Killed):
        train_reinforce(
            tiny_policy, count_a, PROMPTS, EVAL_PROMPTS, config, tmp_path / "run",
            on_log=on_log, resume_path=resume_path,
        )  # fmt: skip
    assert resume_path.is_file()  # saved after step 2 (with the reference's eval answers)
    resumed = train_reinforce(
        tiny_policy, count_a, PROMPTS, EVAL_PROMPTS, config, tmp_path / "run",
        on_log=lambda step, metrics: logs.append(metrics), resume_path=resume_path,
    )  # fmt: skip

    assert [m["step"] for m in logs] == [1, 2, 3, 3, 4, 5]  # step 3 trained again from the checkpoint
    assert losses_by_step(logs) == losses_by_step(whole_logs)
    for key in ("reward_policy", "reward_reference", "win_rate", "kl", "train_reward_mean"):
        assert resumed[key] == whole[key], key
    assert resumed["eval_samples"] == whole["eval_samples"]
    assert same_weights(tmp_path / "whole" / "final", tmp_path / "run" / "final")


def test_sft_resumed_after_a_kill_ends_as_the_uninterrupted_run(tiny_chat_policy, tmp_path):
    config = SFTConfig(epochs=3, batch_size=2, learning_rate=1e-3, checkpoint_every=2, seed=5)
    dialogues = [DIALOGUE] * 5  # 3 steps an epoch, 9 in all
    whole_logs: list[dict] = []
    whole = train_sft(
        tiny_chat_policy, dialogues, config, tmp_path / "whole",
        on_log=lambda step, metrics: whole_logs.append(metrics), resume_path=tmp_path / "whole.resume" / "resume.pt",
    )  # fmt: skip
    resume_path = tmp_path / "run.resume" / "resume.pt"
    logs: list[dict] = []

    def on_log(step: int, metrics: dict) -> None:
        logs.append(metrics)
        killed_at(5)(step, metrics)

    with pytest.raises(Killed):
        train_sft(tiny_chat_policy, dialogues, config, tmp_path / "run", on_log=on_log, resume_path=resume_path)
    resumed = train_sft(
        tiny_chat_policy, dialogues, config, tmp_path / "run",
        on_log=lambda step, metrics: logs.append(metrics), resume_path=resume_path,
    )  # fmt: skip

    assert [m["step"] for m in logs] == [1, 2, 3, 4, 5, 5, 6, 7, 8, 9]
    assert losses_by_step(logs) == losses_by_step(whole_logs)
    assert (resumed["first_loss"], resumed["final_loss"]) == (whole["first_loss"], whole["final_loss"])
    assert same_weights(tmp_path / "whole" / "final", tmp_path / "run" / "final")
