"""DPO as a kind of policy run: the same judgments and rules as a reward run, one validation for the form, the
command and the API, the run page's curves, the held-out comparison, "send to annotators" and lineage."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from annotate.models import Batch
from policy.errors import PolicyRunError
from policy.evaluation import send_to_annotators
from policy.lineage import lineage_of
from policy.models import PolicyRun
from policy.services import start_policy_run
from runs.models import RunStatus
from tests.policy.helpers import judged_batch, succeeded_reward_run

TINY_DPO = {"epochs": 2, "batch_size": 3, "learning_rate": 1e-3, "beta": 0.5, "max_new_tokens": 4}


def run_command(name: str, *args) -> list[str]:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_pairs_follow_the_reward_run_rules(db, alice, bob):
    batch = judged_batch([alice, bob])
    run = start_policy_run(None, "dpo", data_batch=batch, dispatch=False, eval_fraction=0.25)
    # 8 items x 2 judgments, one marked wrong: 15 pairs under "each".
    assert run.config["train_pairs"] + run.config["eval_pairs"] == 15
    assert run.total_steps == -(-run.config["train_pairs"] // 4)  # default batch size 4, 1 epoch
    by_item = start_policy_run(None, "dpo", data_batch=batch, dispatch=False, aggregate="majority")
    assert by_item.config["train_pairs"] + by_item.config["eval_pairs"] == 8
    without_bob = start_policy_run(None, "dpo", data_batch=batch, dispatch=False, exclude_annotators=[bob.pk])
    assert without_bob.config["train_pairs"] + without_bob.config["eval_pairs"] == 8
    assert without_bob.config["exclude_annotators"] == [bob.pk]


def test_service_refuses_what_dpo_cannot_learn_from(db, alice, tmp_path):
    batch = judged_batch([alice])
    with pytest.raises(PolicyRunError, match="pick a batch"):
        start_policy_run(None, "dpo", dispatch=False)
    with pytest.raises(PolicyRunError, match="no \\(untied\\) judgments"):
        start_policy_run(None, "dpo", data_batch=Batch.objects.create(name="empty"), dispatch=False)
    with pytest.raises(PolicyRunError, match="margin: IPO has no margin"):
        start_policy_run(None, "dpo", data_batch=batch, dispatch=False, loss_type="ipo", margin="level")
    with pytest.raises(PolicyRunError, match="processes: DPO trains in one process"):
        start_policy_run(None, "dpo", data_batch=batch, dispatch=False, processes=2)
    queued = succeeded_reward_run(tmp_path / "rm")
    queued.status = RunStatus.QUEUED
    queued.save()
    with pytest.raises(PolicyRunError, match="pick a run that succeeded"):
        start_policy_run(None, "dpo", data_batch=batch, reward_run=queued, dispatch=False)
    assert not PolicyRun.objects.exists()


def test_api_and_form_check_the_options_as_the_config_does(db, charlie, alice, client):
    batch = judged_batch([alice])
    api = APIClient()
    api.force_authenticate(charlie)
    response = api.post("/api/policy-runs/", {"kind": "dpo", "data_batch": batch.pk, "options": {"beta": 0}}, "json")
    assert response.status_code == 400 and "beta" in json.dumps(response.json())
    response = api.post(
        "/api/policy-runs/",
        {"kind": "dpo", "data_batch": batch.pk, "aggregate": "majority", "options": {"loss_type": "ipo"}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    run = PolicyRun.objects.get(pk=response.json()["id"])
    assert run.kind == "dpo" and run.config["loss_type"] == "ipo" and run.config["aggregate"] == "majority"

    client.force_login(charlie)
    page = client.get("/dashboard/policy/new/dpo/")
    assert page.status_code == 200 and b'name="beta"' in page.content and b'name="data_file"' not in page.content
    response = client.post("/dashboard/policy/new/dpo/", {"aggregate": "each", "beta": "0.1", "epochs": "1"})
    assert response.status_code == 200 and b"Pick a batch of judgments." in response.content
    response = client.post(
        "/dashboard/policy/new/dpo/",
        {"data_batch": batch.pk, "aggregate": "each", "loss_type": "ipo", "margin": "level", "beta": "0.1"},
    )
    assert b"IPO has no margin" in response.content
    assert PolicyRun.objects.count() == 1


def test_train_dpo_command_judges_the_result_like_a_reinforce_run(db, alice, charlie, tiny_chat_policy, tmp_path):
    batch = judged_batch([alice])
    reward_run = succeeded_reward_run(tmp_path / "rm")
    args = [f"--{key.replace('_', '-')}={value}" for key, value in TINY_DPO.items()]
    lines = run_command(
        "train_dpo", "--batch", "prefs", "--base", tiny_chat_policy, "--reward-run", str(reward_run.pk), *args
    )
    result = json.loads(lines[-1])
    run = PolicyRun.objects.get(pk=result["run"])
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert {"win_rate", "kl", "reward_policy", "eval_accuracy", "eval_margin"} <= set(result)
    # The curves the run page draws, on training batches and held-out pairs.
    assert len(run.curve("accuracy")) == run.total_steps and run.curve("eval_accuracy")
    assert run.curve("logps_chosen") and run.curve("eval_logps_rejected")
    assert len(run.eval_samples) == run.config["eval_pairs"] and run.eval_samples[0]["policy_responses"]
    assert (run.model_dir / "README.md").read_text().count("direct preference optimization (DPO") == 1

    page = APIClient()
    page.force_authenticate(charlie)
    assert page.get(f"/api/policy-runs/{run.pk}/download/").status_code == 200
    sent = send_to_annotators(run, charlie)
    assert sent.items.count() == len(run.eval_samples)
    kinds = [(step.kind, step.obj.pk) for step in lineage_of(run)]
    assert ("batch", batch.pk) in kinds and ("reward", reward_run.pk) in kinds and ("batch", sent.pk) in kinds

    browser = Client()
    browser.force_login(charlie)
    html = browser.get(run.get_absolute_url()).content.decode()
    assert "Implicit-reward accuracy" in html and "Log-probability of the answers" in html
    assert 'id="model-winrates"' in html and "Reward model<" in html  # its win rate with count and interval


def test_train_dpo_command_names_a_missing_batch_and_reward_run(db):
    with pytest.raises(CommandError, match="No batch named 'nope'"):
        run_command("train_dpo", "--batch", "nope")
    with pytest.raises(CommandError, match="No reward-model run 999"):
        run_command("train_dpo", "--batch", "nope", "--reward-run", "999")
    with pytest.raises(CommandError, match="beta"):
        run_command("train_dpo", "--batch", "nope", "--beta", "0")
