"""`train_policy` and `train_sft` in the foreground: progress lines, one JSON line at the end, clear errors."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from policy.models import PolicyRun
from rewardmodel.models import RewardModelRun
from runs.models import RunStatus
from tests.policy.helpers import PROMPTS, prompts_batch, succeeded_reward_run

TINY = ["--steps", "2", "--prompts-per-step", "2", "--samples-per-prompt", "2", "--max-new-tokens", "6"]


@pytest.fixture
def reward_run(db, tmp_path):
    return succeeded_reward_run(tmp_path / "reward")


def run_command(name: str, *args) -> list[str]:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_train_policy_ends_with_one_json_line_of_final_metrics(reward_run, tiny_policy, tmp_path):
    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))

    lines = run_command(
        "train_policy", "--reward-run", str(reward_run.pk), "--base", tiny_policy,
        "--prompts-file", str(prompts_file), "--baseline", "mean", "--kl-coef", "0.2", *TINY,
    )  # fmt: skip

    final = json.loads(lines[-1])
    assert {"reward_policy", "reward_reference", "win_rate", "kl"} <= set(final)
    assert 0.0 <= final["win_rate"] <= 1.0
    assert lines[0] == f"Run {final['run']}"
    assert any(line.startswith("step 2/2") for line in lines)
    run = PolicyRun.objects.get(pk=final["run"])
    assert run.status == RunStatus.SUCCEEDED
    assert (run.config["baseline"], run.config["kl_coef"]) == ("mean", 0.2)
    assert run.model_dir is not None and (run.model_dir / "config.json").is_file()


def test_sft_output_is_the_base_of_a_reinforce_run(reward_run, tiny_policy, tmp_path):
    dialogues = tmp_path / "dialogues.jsonl"
    dialogues.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
        + "\n"
        + json.dumps({"prompt": "a b", "response": "sure ok"})
        + "\n"
    )
    sft = json.loads(run_command("train_sft", "--base", tiny_policy, "--file", str(dialogues), "--epochs", "2")[-1])
    assert sft["examples"] == 2 and sft["steps"] >= 1
    sft_run = PolicyRun.objects.get(pk=sft["run"])
    assert sft_run.kind == PolicyRun.Kind.SFT and sft_run.status == RunStatus.SUCCEEDED

    prompts_batch("prompts")
    final = json.loads(
        run_command(
            "train_policy", "--reward-run", str(reward_run.pk), "--base-run", str(sft_run.pk),
            "--prompts-batch", "prompts", *TINY,
        )[-1]
    )  # fmt: skip
    run = PolicyRun.objects.get(pk=final["run"])
    assert run.base_run == sft_run and run.status == RunStatus.SUCCEEDED


def test_train_policy_refuses_a_reward_run_that_did_not_succeed(db, tiny_policy):
    failed = RewardModelRun.objects.create(status=RunStatus.FAILED, error="boom")
    prompts_batch("prompts")
    with pytest.raises(CommandError, match=f"Reward run {failed.pk} is failed; pick a run that succeeded"):
        run_command("train_policy", "--reward-run", str(failed.pk), "--prompts-batch", "prompts", *TINY)
    assert not PolicyRun.objects.exists()


def test_train_policy_names_a_missing_batch_and_a_bad_line(reward_run, tmp_path):
    with pytest.raises(CommandError, match="No batch named 'nope'"):
        run_command("train_policy", "--reward-run", str(reward_run.pk), "--prompts-batch", "nope")
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "hi"}\n{"prompt": [{"role": "robot", "content": "x"}]}\n')
    with pytest.raises(CommandError, match="prompts.jsonl, line 2, field 'prompt', message 1: role must be"):
        run_command("train_policy", "--reward-run", str(reward_run.pk), "--prompts-file", str(bad))
    assert not PolicyRun.objects.exists()


def test_a_failed_training_exits_with_the_reason(reward_run, tmp_path):
    prompts_batch("prompts")
    not_a_model = tmp_path / "not-a-model"  # under a model root (tmp_path), but no model in it
    not_a_model.mkdir()
    with pytest.raises(CommandError, match=r"Run \d+ failed: .*tokenizer"):
        run_command(
            "train_policy", "--reward-run", str(reward_run.pk), "--prompts-batch", "prompts",
            "--base", str(not_a_model), *TINY,
        )  # fmt: skip


def test_train_sft_on_two_processes_trains_through_torchrun_and_reports_every_step(tiny_policy, tmp_path, db):
    dialogues = tmp_path / "dialogues.jsonl"
    rows = [{"prompt": prompt, "response": "sure ok"} for prompt in ("hi", "a b", "c d", "hello")]
    dialogues.write_text("".join(json.dumps(row) + "\n" for row in rows))
    lines = run_command(
        "train_sft", "--base", tiny_policy, "--file", str(dialogues), "--epochs", "2", "--batch-size", "2",
        "--processes", "2",
    )  # fmt: skip
    sft = json.loads(lines[-1])
    run = PolicyRun.objects.get(pk=sft["run"])

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.config["processes"] == 2 and sft["steps"] == 4 and sft["examples"] == 4
    assert [log.step for log in run.logs.order_by("step")] == [1, 2, 3, 4]  # rank 0's reports, once each
    assert run.model_dir is not None and (run.model_dir / "config.json").is_file()
    assert not run.launch_dir.exists()
