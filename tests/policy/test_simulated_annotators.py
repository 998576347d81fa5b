"""End to end: "Send to annotators" → simulated annotators preferring by a judge (not the training reward model) →
the human win rate on the run page, marked simulated, with its count and interval."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotate.models import Judgment
from annotate.simulation import simulate_annotators
from tests.policy.helpers import finished_run_with_answers, succeeded_reward_run
from tests.worker import wait_for


@pytest.fixture
def reward_run(db, tmp_path):
    return succeeded_reward_run(tmp_path / "reward")


@pytest.fixture
def judge(db, tmp_path):
    return succeeded_reward_run(tmp_path / "judge")


def run_page(client, run) -> str:
    return client.get(reverse("policy:run_detail", args=[run.pk])).content.decode()


def test_the_command_answers_the_sent_batch_and_the_page_shows_a_simulated_win_rate(
    charlie_client, reward_run, judge, capsys
):
    run = finished_run_with_answers(reward_run, answers=6)
    charlie_client.post(reverse("policy:run_send", args=[run.pk]), {"overlap": 2})
    run.refresh_from_db()
    batch = run.annotation_batch

    call_command("simulate_annotators", batch.name, "--reward-run", str(judge.pk), "--annotators", "2", "--seed", "5")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"batch": batch.name, "annotators": ["simulated-1", "simulated-2"], "hits": 2, "judgments": 12}
    assert Judgment.objects.filter(item__batch=batch).simulated().count() == 12

    page = run_page(charlie_client, run)
    assert "Simulated annotators" in page and "of 12" in page
    assert "95 % interval" in page and " – " in page
    # Twelve coin-like judgments cannot tell two policies apart; the page says so, or says which side won.
    assert any(words in page for words in ("not distinguishable", "better than the reference", "worse than"))
    assert "Answer with simulated annotators" not in page  # the batch is done
    human = charlie_client.get(f"/api/policy-runs/{run.pk}/").json()["win_rates"]["human"]
    assert (human["n"], human["simulated"]) == (12, 12) and human["low"] < human["rate"] < human["high"]


def test_the_training_reward_model_is_refused_as_the_simulated_annotators_judge(charlie_client, reward_run, judge):
    run = finished_run_with_answers(reward_run)
    charlie_client.post(reverse("policy:run_send", args=[run.pk]))
    page = run_page(charlie_client, run)
    assert "Answer with simulated annotators" in page
    response = charlie_client.post(
        reverse("policy:run_simulate", args=[run.pk]), {"reward_run": reward_run.pk, "annotators": 2}, follow=True
    )
    assert "must not prefer by the run&#x27;s own reward model" in response.content.decode()
    response = charlie_client.post(
        reverse("policy:run_simulate", args=[run.pk]), {"reward_run": judge.pk, "annotators": 0}, follow=True
    )
    assert "annotators must be between 1 and 100" in response.content.decode()


def test_a_simulated_judge_that_prefers_the_policy_gives_a_win_rate_above_one_half(charlie_client, reward_run):
    """With a scorer that prefers the policy's answers, the interval of the simulated win rate lies above 0.5."""
    run = finished_run_with_answers(reward_run, answers=12)
    charlie_client.post(reverse("policy:run_send", args=[run.pk]), {"overlap": 3})
    run.refresh_from_db()
    simulate_annotators(
        run.annotation_batch, lambda prompts, responses: [float("policy" in r) for r in responses], 3, temperature=0.1
    )
    page = run_page(charlie_client, run)
    assert "36 of 36" in page and "better than the reference" in page


@pytest.mark.worker
def test_the_staff_action_runs_the_simulation_on_a_worker(celery_worker, charlie, client, reward_run, judge):
    client.force_login(charlie)
    run = finished_run_with_answers(reward_run, answers=4)
    client.post(reverse("policy:run_send", args=[run.pk]))
    run.refresh_from_db()
    response = client.post(
        reverse("policy:run_simulate", args=[run.pk]),
        {"reward_run": judge.pk, "annotators": 2, "temperature": 1},
        follow=True,
    )
    assert "2 simulated annotators preferring by" in response.content.decode()
    wanted = 4  # overlap 1: one judgment per comparison
    wait_for(
        lambda: Judgment.objects.filter(item__batch=run.annotation_batch).simulated().count() == wanted,
        timeout=120,
        message=f"simulated judgments\n{celery_worker.log()}",
    )
    assert "Simulated annotators" in run_page(client, run)
