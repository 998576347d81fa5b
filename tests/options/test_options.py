"""Options defined once: forms, commands and the API derive from the config dataclasses and refuse alike."""

from __future__ import annotations

import argparse
import datetime
import html
from dataclasses import dataclass
from io import StringIO

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.api.exports import ExportQuerySerializer
from annotate.export import ExportFilters
from annotate.quality_views import ExportForm
from arbiter.options import ConfigOptionsForm, add_option_arguments, options_serializer
from policy.forms import ReinforceRunForm, SFTRunForm
from policy.models import PolicyRun
from policy.reinforce import ReinforceConfig, SFTConfig
from rewardmodel.api import StartRewardRunSerializer
from rewardmodel.forms import RewardRunForm
from rewardmodel.models import RewardModelRun
from rewardmodel.train import RewardTrainConfig
from rlhf.options import OptionError, option, option_fields
from runs.models import RunStatus
from tests.policy.helpers import prompts_batch, succeeded_reward_run
from tests.rewardmodel.helpers import judged_batch


def option_names(config_class: type) -> set[str]:
    return {field.name for field in option_fields(config_class)}


def command_dests(app: str, name: str) -> set[str]:
    parser = load_command_class(app, name).create_parser("manage.py", name)
    return {action.dest for action in parser._actions}


# Derived from the dataclass --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("config_class", "form_class", "command", "serializer_fields"),
    [
        (RewardTrainConfig, RewardRunForm, ("rewardmodel", "train_reward_model"),
         lambda: StartRewardRunSerializer().fields["options"].fields),
        (ReinforceConfig, ReinforceRunForm, ("policy", "train_policy"),
         lambda: options_serializer(ReinforceConfig)().fields),
        (SFTConfig, SFTRunForm, ("policy", "train_sft"), lambda: options_serializer(SFTConfig)().fields),
        (ExportFilters, ExportForm, ("annotate", "export_preferences"), lambda: ExportQuerySerializer().fields),
    ],
)  # fmt: skip
def test_every_option_is_in_the_form_the_command_and_the_api(config_class, form_class, command, serializer_fields):
    names = option_names(config_class)
    assert names, "the config declares its user options with option()"
    assert names <= set(form_class().fields)
    assert names <= command_dests(*command)
    assert names <= set(serializer_fields())
    defaults = config_class()
    form = form_class()
    assert all(form.fields[name].initial == getattr(defaults, name) for name in names)


@dataclass
class ExtendedConfig(RewardTrainConfig):
    warmup_steps: int = option(0, low=0, high=50, help="A new option.", advanced=True)


def test_a_new_dataclass_option_appears_in_all_three_with_its_bounds_and_help():
    parser = argparse.ArgumentParser()
    add_option_arguments(parser, ExtendedConfig)
    assert parser.parse_args(["--warmup-steps", "7"]).warmup_steps == 7
    assert parser.parse_args([]).warmup_steps is None  # unset: the config's default
    assert "A new option." in parser.format_help()

    form = type("ExtendedForm", (ConfigOptionsForm,), {"config_class": ExtendedConfig})()
    assert form.fields["warmup_steps"].help_text == "A new option. 0 to 50."
    assert 'min="0"' in str(form["warmup_steps"]) and 'max="50"' in str(form["warmup_steps"])
    assert "warmup_steps" in {bound.name for bound in form.advanced_fields()}

    serializer = options_serializer(ExtendedConfig)(data={"warmup_steps": 51})
    assert not serializer.is_valid()
    message = "warmup_steps must be a whole number in [0, 50], got 51."
    assert serializer.errors == {"warmup_steps": [message]}
    with pytest.raises(OptionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ExtendedConfig(warmup_steps=51)


def test_configs_refuse_absurd_values_naming_the_field():
    for config_class, name, value in [
        (RewardTrainConfig, "epochs", 10**20),
        (RewardTrainConfig, "learning_rate", 1e20),
        (RewardTrainConfig, "learning_rate", float("nan")),
        (RewardTrainConfig, "max_length", 10**9),
        (ReinforceConfig, "max_new_tokens", 10**9),
        (ReinforceConfig, "prompts_per_step", 0),
        (SFTConfig, "batch_size", 10**6),
        (ExportFilters, "min_judgments", 0),
    ]:
        with pytest.raises(OptionError) as refused:
            config_class(**{name: value})
        assert refused.value.name == name and str(refused.value).startswith(f"{name} must be")


# One refusal for form, command and API -----------------------------------------------------------------------


@pytest.fixture
def staff_api(charlie) -> APIClient:
    client = APIClient()
    client.force_authenticate(charlie)
    return client


def page_text(response) -> str:
    return html.unescape(response.content.decode())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("option", "cli_value", "message"),
    [
        ("epochs", 10**20, "epochs must be a whole number in [1, 1000], got 100000000000000000000."),
        ("eval_fraction", 2.5, "eval_fraction must be in [0, 0.9], got 2.5."),
        ("processes", 65, "processes must be a whole number in [1, 64], got 65."),
        ("backbone", "/etc", "backbone: /etc is not inside a model folder root"),
        # Shaped like a hub id but longer than the hub allows (96): the hub's HFValidationError was a 500.
        ("backbone", "a" * 97, "backbone: not a valid Hugging Face id or model folder."),
        ("backbone", "owner/a--b", "backbone: not a valid Hugging Face id or model folder."),
    ],
)
def test_a_bad_reward_option_is_refused_alike_by_form_command_and_api(
    charlie_client, staff_api, alice, option, cli_value, message
):
    batch = judged_batch("judged", alice, items=2)
    form = {"batches": [batch.pk], "aggregate": "each", option: cli_value}
    page = page_text(charlie_client.post(reverse("rewardmodel:run_new"), form))
    with pytest.raises(CommandError) as refused:
        flag = "--" + option.replace("_", "-")
        call_command("train_reward_model", "--batch", "judged", flag, str(cli_value), stdout=StringIO())
    body = {"batches": [batch.pk], "options": {option: cli_value}}
    response = staff_api.post("/api/reward-runs/", body, format="json")

    assert message in page
    assert str(refused.value).startswith(message)
    assert response.status_code == 400 and response.json()["options"][option][0].startswith(message)
    assert str(refused.value) == response.json()["options"][option][0]
    assert not RewardModelRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("option", "cli_value", "message"),
    [
        ("max_new_tokens", 10**9, "max_new_tokens must be a whole number in [1, 4096], got 1000000000."),
        ("strategy", "fsdp", "strategy fsdp is not available for REINFORCE"),
        (
            "lora_target_modules",
            "q_proj;x",
            "lora_target_modules must be all-linear or module names separated by commas, got 'q_proj;x'.",
        ),
    ],
)
def test_a_bad_reinforce_option_is_refused_alike_by_form_command_and_api(
    charlie_client, staff_api, tmp_path, option, cli_value, message
):
    reward_run = succeeded_reward_run(tmp_path / "rm")
    batch = prompts_batch("prompts")
    form = {"reward_run": reward_run.pk, "data_batch": batch.pk, option: cli_value}
    page = page_text(charlie_client.post(reverse("policy:run_new"), form))
    with pytest.raises(CommandError) as refused:
        call_command(
            "train_policy", "--reward-run", str(reward_run.pk), "--prompts-batch", "prompts",
            "--" + option.replace("_", "-"), str(cli_value), stdout=StringIO(),
        )  # fmt: skip
    body = {"reward_run": reward_run.pk, "data_batch": batch.pk, "options": {option: cli_value}}
    response = staff_api.post("/api/policy-runs/", body, format="json")

    assert message in page
    assert str(refused.value).startswith(message)
    assert response.status_code == 400 and list(response.json()) == ["options"]
    assert response.json()["options"][option] == [str(refused.value)]
    assert not PolicyRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"device": "cuda:7"}, "device"),  # config fields that are not user options
        ({"level_margins": "x"}, "level_margins"),
        ({"level_margins": {"clear": 1e300}}, "level_margins"),
        ({"epoks": 3}, "epoks"),
    ],
)
def test_a_config_field_that_is_not_an_option_is_refused_before_a_run_exists(staff_api, alice, options, name):
    batch = judged_batch("judged", alice, items=2)
    response = staff_api.post("/api/reward-runs/", {"batches": [batch.pk], "options": options}, format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": [f"Unknown training option: {name}."]}
    assert not RewardModelRun.objects.exists()


@pytest.mark.django_db
def test_a_base_path_longer_than_a_hub_id_is_refused_by_the_policy_api(staff_api, tmp_path):
    reward_run = succeeded_reward_run(tmp_path / "rm")
    batch = prompts_batch("prompts")
    body = {"kind": "reinforce", "reward_run": reward_run.pk, "data_batch": batch.pk, "base_path": "b" * 97}
    response = staff_api.post("/api/policy-runs/", body, format="json")
    assert response.status_code == 400
    assert response.json()["base_path"][0].startswith("base_path: not a valid Hugging Face id or model folder.")
    body["base_path"] = "b" * 501
    assert "base_path" in staff_api.post("/api/policy-runs/", body, format="json").json()
    assert not PolicyRun.objects.exists()


@pytest.mark.django_db
def test_a_bad_export_option_is_refused_alike_by_form_command_and_api(charlie_client, staff_api):
    message = "min_judgments must be a whole number in [1, 1000], got 0."
    response = charlie_client.get(reverse("quality:export"), {"format": "trl", "min_judgments": 0})
    with pytest.raises(CommandError) as refused:
        call_command("export_preferences", "--format", "trl", "--min-judgments", "0", stdout=StringIO())
    api = staff_api.get("/api/exports/preferences/", {"min_judgments": 0})

    assert response.status_code == 400 and message in page_text(response)
    assert str(refused.value) == message
    assert api.status_code == 400 and api.json() == {"min_judgments": [message]}


# Forms laid out like the rest of the app -----------------------------------------------------------------------


@pytest.mark.django_db
def test_start_forms_render_label_input_and_help_with_batch_checkboxes_and_counts(charlie_client, alice):
    judged_batch("judged", alice, items=3)
    prompts_batch("prompts", ["One?"])

    reward = charlie_client.get(reverse("rewardmodel:run_new")).content.decode()
    assert '<label for="id_epochs">Epochs</label>' in reward
    assert ">FSDP: the model sharded (reward models)</option>" in reward
    assert '<small class="help" id="id_batch_size_helptext">Pairs per step. 1 to 1024.</small>' in reward
    assert 'type="checkbox" name="batches"' in reward and "judged (3 items, 3 judgments)" in reward
    assert "prompts (1 item, 0 judgments)" in reward
    assert "<summary>More options</summary>" in reward
    assert "form.as_div" not in reward and 'class="helptext"' not in reward  # not Django's default layout

    for url in (reverse("policy:run_new"), reverse("policy:run_new_sft")):
        page = charlie_client.get(url).content.decode()
        assert '<label for="id_learning_rate">Learning rate</label>' in page
        assert "judged (3 items, 3 judgments)" in page

    export = charlie_client.get(reverse("quality:export")).content.decode()
    assert 'type="date" name="since"' in export and 'type="date" name="until"' in export
    assert 'type="checkbox" name="batches" value="judged"' in export and "judged (3 items, 3 judgments)" in export
    assert '<label class="check" for="id_exclude_flagged">' in export


@pytest.mark.django_db
def test_the_reinforce_form_tells_reward_runs_apart(charlie_client, alice, tmp_path):
    run = succeeded_reward_run(tmp_path / "rm")
    run.batches.set([judged_batch("hh-helpful", alice, items=2), judged_batch("demo", alice, items=2)])
    finished = timezone.make_aware(datetime.datetime(2025, 3, 14, 12, 0))
    RewardModelRun.objects.filter(pk=run.pk).update(
        config={"backbone": "/models/deberta-v3-small"}, finished_at=finished
    )
    RewardModelRun.objects.create(status=RunStatus.FAILED)

    page = html.unescape(charlie_client.get(reverse("policy:run_new")).content.decode())

    assert f"Reward run {run.pk} · demo, hh-helpful · deberta-v3-small · held-out accuracy 0.750 · 2025-03-14" in page


@pytest.mark.django_db
def test_the_services_check_model_locations_themselves(alice, tmp_path):
    """A caller of the services (a script, a future view) cannot skip the model-folder check the form does."""
    from policy.errors import PolicyRunError
    from policy.services import start_policy_run
    from rewardmodel.services import RewardRunError, start_reward_run

    batch = judged_batch("judged", alice, items=2)
    with pytest.raises(RewardRunError, match="backbone: /etc is not inside a model folder root"):
        start_reward_run(None, [batch], backbone="/etc", dispatch=False)
    reward_run = succeeded_reward_run(tmp_path / "rm")
    prompts = prompts_batch("prompts")
    with pytest.raises(PolicyRunError, match="base_path: /etc is not inside a model folder root"):
        start_policy_run(None, "reinforce", reward_run=reward_run, base_path="/etc", data_batch=prompts, dispatch=False)
    assert RewardModelRun.objects.count() == 1 and not PolicyRun.objects.exists()  # only the base reward run
