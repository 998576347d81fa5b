"""train_reward_model and evaluate_reward_model: output, final JSON line, errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Batch
from rewardmodel.models import RewardModelRun
from runs.models import RunStatus
from tests.rewardmodel.helpers import build_tiny_backbone, judged_batch
from tests.worker import current_database_url

ROOT = Path(__file__).resolve().parents[2]
TINY_ARGS = [
    "--epochs",
    "2",
    "--batch-size",
    "4",
    "--eval-fraction",
    "0.25",
    "--learning-rate",
    "0.001",
    "--log-every",
    "1",
]


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.ARTIFACTS_DIR


def train(*args: str) -> tuple[RewardModelRun, list[str]]:
    out = StringIO()
    call_command("train_reward_model", *args, stdout=out)
    lines = out.getvalue().splitlines()
    return RewardModelRun.objects.get(pk=int(lines[0].removeprefix("Run "))), lines


def hh_line(prompt: str, chosen: str, rejected: str) -> str:
    return json.dumps(
        {
            "chosen": f"\n\nHuman: {prompt}\n\nAssistant: {chosen}",
            "rejected": f"\n\nHuman: {prompt}\n\nAssistant: {rejected}",
        }
    )


PREFERENCES = [
    ("tell me about the red cat ?", "the red answer is good .", "the red answer is bad ."),
    ("tell me about the blue dog ?", "it is good", "it is awful"),
    ("what is the green sun ?", "a great answer", "a poor answer"),
    ("how do you help me ?", "yes please", "no"),
]


# train_reward_model ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_training_prints_the_run_progress_and_ends_with_the_final_metrics(alice, tiny_backbone, artifacts):
    judged_batch("judged", alice)

    run, lines = train("--batch", "judged", "--backbone", tiny_backbone, "--margin", "level", *TINY_ARGS)

    assert lines[0] == f"Run {run.pk}"
    progress = [line for line in lines if line.startswith("step ")]
    assert [line.split()[1] for line in progress] == [f"{n}/{run.total_steps}" for n in range(1, run.total_steps + 1)]
    assert "loss" in progress[0] and "eval_accuracy" in progress[-1]
    final = json.loads(lines[-1])
    assert final == run.metrics
    assert {"eval_accuracy", "eval_accuracy_clear", "eval_accuracy_slight", "eval_pairs"} <= set(final)
    assert run.status == RunStatus.SUCCEEDED and run.created_by is None
    assert run.config["margin"] == "level" and run.config["epochs"] == 2
    assert Path(run.artifact_path).is_dir()


@pytest.mark.django_db
def test_training_refuses_unknown_or_empty_batches(alice):
    judged_batch("judged", alice, items=2)
    Batch.objects.create(name="empty")

    with pytest.raises(CommandError, match="No batch named 'nope'"):
        call_command("train_reward_model", "--batch", "judged", "--batch", "nope", stdout=StringIO())
    with pytest.raises(CommandError, match="No judgments to train on in batch empty"):
        call_command("train_reward_model", "--batch", "empty", stdout=StringIO())
    with pytest.raises(CommandError, match="eval_fraction must be in"):
        call_command("train_reward_model", "--batch", "judged", "--eval-fraction", "2", stdout=StringIO())
    assert not RewardModelRun.objects.exists()


@pytest.mark.django_db
def test_a_run_that_fails_is_an_error_naming_the_reason(alice, artifacts, tmp_path):
    judged_batch("judged", alice, items=2)
    not_a_model = tmp_path / "not-a-model"  # under a model root (tmp_path), but no model in it
    not_a_model.mkdir()

    with pytest.raises(CommandError, match=r"Run \d+ failed: .*tokenizer"):
        call_command("train_reward_model", "--batch", "judged", "--backbone", str(not_a_model), stdout=StringIO())
    assert RewardModelRun.objects.get().status == RunStatus.FAILED


# evaluate_reward_model ---------------------------------------------------------------------------


@pytest.fixture
def trained_run(alice, tiny_backbone, artifacts) -> RewardModelRun:
    judged_batch("judged", alice)
    run, _ = train("--batch", "judged", "--backbone", tiny_backbone, *TINY_ARGS)
    return run


def evaluate(run_id, path) -> tuple[dict, str]:
    out = StringIO()
    call_command("evaluate_reward_model", str(run_id), str(path), stdout=out, stderr=StringIO())
    lines = out.getvalue().splitlines()
    return json.loads(lines[-1]), out.getvalue()


@pytest.mark.django_db
def test_evaluation_scores_hh_and_trl_files_in_the_right_direction(trained_run, tmp_path):
    hh = tmp_path / "hh.jsonl"
    hh.write_text("\n".join(hh_line(*p) for p in PREFERENCES) + "\n")
    hh_swapped = tmp_path / "hh_swapped.jsonl"
    hh_swapped.write_text("\n".join(hh_line(prompt, worse, better) for prompt, better, worse in PREFERENCES))
    trl = tmp_path / "trl.json"
    trl.write_text(json.dumps([{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PREFERENCES]))

    result, output = evaluate(trained_run.pk, hh)
    swapped, _ = evaluate(trained_run.pk, hh_swapped)
    from_trl, _ = evaluate(trained_run.pk, trl)

    assert len(output.splitlines()) == 1
    assert result["pairs"] == 4 and set(result) == {"accuracy", "pairs", "mean_margin"}
    # Same pairs with the answer flipped: every pair right before is wrong now.
    assert result["accuracy"] + swapped["accuracy"] == pytest.approx(1.0)
    assert from_trl["accuracy"] == pytest.approx(result["accuracy"])
    assert RewardModelRun.objects.count() == 1 and Batch.objects.count() == 1  # nothing imported


@pytest.mark.django_db
def test_evaluation_refuses_bad_runs_and_bad_files(trained_run, tmp_path, alice):
    good = tmp_path / "hh.jsonl"
    good.write_text(hh_line(*PREFERENCES[0]) + "\n")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(hh_line(*PREFERENCES[0]) + "\n{not json\n")
    unlabelled = tmp_path / "alpaca.jsonl"
    unlabelled.write_text(json.dumps({"instruction": "Say hi", "input": "", "output_1": "hi", "output_2": "yo"}))
    queued = RewardModelRun.objects.create()

    with pytest.raises(CommandError, match="No reward-model run 999"):
        evaluate(999, good)
    with pytest.raises(CommandError, match=f"Run {queued.pk} has no trained model"):
        evaluate(queued.pk, good)
    with pytest.raises(CommandError, match="line 2"):
        evaluate(trained_run.pk, broken)
    with pytest.raises(CommandError, match="alpacafarm records have no known answer"):
        evaluate(trained_run.pk, unlabelled)
    with pytest.raises(CommandError, match="cannot read"):
        evaluate(trained_run.pk, tmp_path / "missing.jsonl")


@pytest.mark.django_db(transaction=True)
def test_exit_codes_of_the_real_command(trained_run, tmp_path, settings):
    hh = tmp_path / "hh.jsonl"
    hh.write_text("\n".join(hh_line(*p) for p in PREFERENCES))
    env = {**os.environ, "DATABASE_URL": current_database_url(), "ARBITER_VAR_DIR": str(settings.VAR_DIR)}

    def manage(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "manage.py", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    ok = manage("evaluate_reward_model", str(trained_run.pk), str(hh))
    bad = manage("evaluate_reward_model", "999", str(hh))

    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[-1])["pairs"] == 4
    assert bad.returncode == 1
    assert "No reward-model run 999" in bad.stderr
