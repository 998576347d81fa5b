"""The policy dashboard: staff only; start, watch, browse samples, cancel, download, send to annotators."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import Judgment, Rating
from policy.errors import PolicyRunError
from policy.models import PolicyLog, PolicyRun, PolicySample
from policy.reinforce import ReinforceConfig
from policy.services import start_policy_run
from rewardmodel.models import RewardModelRun
from runs.models import RunStatus
from tests.policy.helpers import finished_run_with_answers, prompts_batch, succeeded_reward_run


@pytest.fixture
def reward_run(db, tmp_path):
    return succeeded_reward_run(tmp_path / "reward")


@pytest.fixture
def finished_run(reward_run, settings, tmp_path):
    """A succeeded run with curves, samples and a model folder with one checkpoint."""
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    run = finished_run_with_answers(reward_run)
    folder = settings.ARTIFACTS_DIR / f"policy-{run.pk}"
    for name in ("final", "checkpoint-1"):
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text('{"model_type": "llama"}')
    run.artifact_path = str(folder)
    run.save()
    for step in (1, 2):
        PolicyLog.objects.create(
            run=run, step=step, metrics={"reward_mean": 0.1 * step, "kl": 0.01, "response_length": 5}
        )
    PolicyLog.objects.create(run=run, step=2, metrics={"eval_reward_policy": 0.4, "eval_win_rate": 0.75})
    PolicySample.objects.create(
        run=run, step=1, prompt=[{"role": "user", "content": "first step prompt"}], response="early answer", reward=0.25
    )
    PolicySample.objects.create(
        run=run, step=2, prompt=[{"role": "user", "content": "second step prompt"}], response="late answer", reward=0.5
    )
    return run


def url(name: str, run: PolicyRun | None = None, *extra) -> str:
    return reverse(f"policy:{name}", args=[run.pk, *extra] if run else extra)


# Access -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["run_list", "run_new", "run_new_sft", "run_detail", "run_live", "run_samples", "run_download", "run_human"]
)
def test_annotators_get_403_and_visitors_the_login_page(client, alice_client, finished_run, name):
    target = url(name, finished_run if name not in ("run_list", "run_new", "run_new_sft") else None)
    assert alice_client.get(target).status_code == 403
    client.logout()
    response = client.get(target)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["run_cancel", "run_send"])
def test_annotators_cannot_cancel_or_send(alice_client, finished_run, name):
    assert alice_client.post(url(name, finished_run)).status_code == 403
    finished_run.refresh_from_db()
    assert finished_run.annotation_batch is None


# Starting -----------------------------------------------------------------------------------------


def test_reward_run_picker_offers_only_succeeded_runs(charlie_client, reward_run):
    failed = RewardModelRun.objects.create(status=RunStatus.FAILED, error="boom")
    page = charlie_client.get(url("run_new")).content.decode()
    assert f'value="{reward_run.pk}"' in page
    assert f'value="{failed.pk}"' not in page


def test_start_from_an_uploaded_prompts_file_queues_a_run(charlie_client, reward_run, tiny_policy):
    lines = "\n".join(f'{{"prompt": "{p}"}}' for p in ["hi", "hello", "a b", "c d", "e a"])
    response = charlie_client.post(
        url("run_new"),
        {
            "reward_run": reward_run.pk,
            "base_path": tiny_policy,
            "data_file": SimpleUploadedFile("prompts.jsonl", lines.encode()),
            "steps": 3,
            "prompts_per_step": 2,
            "samples_per_prompt": 2,
            "kl_coef": 0.1,
            "baseline": "mean",
            "learning_rate": 1e-4,
            "max_new_tokens": 8,
        },
    )
    run = PolicyRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.status == RunStatus.QUEUED and run.reward_run == reward_run
    assert (run.config["steps"], run.config["baseline"], run.config["kl_coef"]) == (3, "mean", 0.1)
    assert (run.config["train_prompts"], run.config["eval_prompts"]) == (4, 1)
    assert run.data_file.read().decode() == lines


def test_a_bad_prompts_file_is_refused_naming_the_line(charlie_client, reward_run):
    bad = b'{"prompt": "hi"}\n{"prompt": "hello"}\n{"text": "no prompt here"}\n'
    response = charlie_client.post(
        url("run_new"),
        {
            "reward_run": reward_run.pk,
            "data_file": SimpleUploadedFile("prompts.jsonl", bad),
            "steps": 3,
            "prompts_per_step": 2,
            "samples_per_prompt": 2,
            "kl_coef": 0.1,
            "baseline": "loo",
            "learning_rate": 1e-4,
            "max_new_tokens": 8,
        },
    )
    assert response.status_code == 200
    assert "prompts.jsonl, line 3: needs a &#x27;prompt&#x27; field." in response.content.decode()
    assert not PolicyRun.objects.exists()


def test_the_form_asks_for_a_batch_or_a_file(charlie_client, reward_run):
    response = charlie_client.post(
        url("run_new"),
        {"reward_run": reward_run.pk, "steps": 3, "prompts_per_step": 2, "samples_per_prompt": 2,
         "kl_coef": 0.1, "baseline": "loo", "learning_rate": 1e-4, "max_new_tokens": 8},
    )  # fmt: skip
    assert "Pick a batch or upload a file" in response.content.decode()
    assert not PolicyRun.objects.exists()


def test_start_from_a_batch_with_defaults(charlie_client, reward_run):
    batch = prompts_batch("my prompts")
    form_page = charlie_client.get(url("run_new")).content.decode()
    defaults = ReinforceConfig()
    assert f'name="steps" value="{defaults.steps}"' in form_page  # the trainer's CPU-sized default
    assert f'name="max_new_tokens" value="{defaults.max_new_tokens}"' in form_page
    response = charlie_client.post(
        url("run_new"),
        {"reward_run": reward_run.pk, "data_batch": batch.pk, "steps": 20, "prompts_per_step": 2,
         "samples_per_prompt": 4, "kl_coef": 0.05, "baseline": "loo", "learning_rate": 1e-5, "max_new_tokens": 32},
    )  # fmt: skip
    assert response.status_code == 302
    run = PolicyRun.objects.get()
    assert run.data_batch == batch and run.base_label.startswith("SmolLM2")


# Watching -----------------------------------------------------------------------------------------


def test_live_panel_shows_progress_and_eta_then_stops_polling(charlie_client, reward_run):
    run = finished_run_with_answers(reward_run)
    run.status = RunStatus.RUNNING
    run.started_at = run.created_at
    run.save()
    run.record_progress(5, 20, "training", eta_seconds=90)
    response = charlie_client.get(url("run_live", run), HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Step 5 of 20 (25%)" in page and "left" in page and "hx-trigger" in page

    run.status = RunStatus.SUCCEEDED
    run.save()
    response = charlie_client.get(url("run_live", run), HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()


def test_run_page_draws_curves_and_offers_checkpoints(charlie_client, finished_run):
    page = charlie_client.get(url("run_detail", finished_run)).content.decode()
    for title in ("Reward", "KL to reference", "Response length (tokens)", "Held-out win rate over reference"):
        assert f'aria-label="{title}"' in page
    assert "<polyline" in page
    assert url("run_download_checkpoint", finished_run, "final") in page
    assert url("run_download_checkpoint", finished_run, "checkpoint-1") in page


def test_sample_browser_shows_the_chosen_step(charlie_client, finished_run):
    page = charlie_client.get(url("run_detail", finished_run)).content.decode()
    assert "late answer" in page and "early answer" not in page  # latest step first

    response = charlie_client.get(url("run_samples", finished_run) + "?step=1&kind=train", HTTP_HX_REQUEST="true")
    fragment = response.content.decode()
    assert "early answer" in fragment and "first step prompt" in fragment and "0.2500" in fragment
    assert "late answer" not in fragment and "<html" not in fragment


def test_download_zips_a_checkpoint(charlie_client, finished_run):
    response = charlie_client.get(url("run_download_checkpoint", finished_run, "checkpoint-1"))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.namelist() == [f"policy-{finished_run.pk}-checkpoint-1/config.json"]
    for missing in ("checkpoint-99", ".."):
        assert charlie_client.get(url("run_download_checkpoint", finished_run, missing)).status_code == 404


def test_cancel_a_queued_run(charlie_client, reward_run):
    run = PolicyRun.objects.create(kind="reinforce", reward_run=reward_run, total_steps=20)
    response = charlie_client.post(url("run_cancel", run), follow=True)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert f"{run} is cancelled." in response.content.decode()


# Human evaluation --------------------------------------------------------------------------------


def test_send_to_annotators_then_human_win_rate_beside_the_reward_models(charlie_client, finished_run, alice, bob):
    page = charlie_client.get(url("run_detail", finished_run)).content.decode()
    assert "Send to annotators" in page

    response = charlie_client.post(url("run_send", finished_run), {"overlap": 2}, follow=True)
    finished_run.refresh_from_db()
    batch = finished_run.annotation_batch
    assert batch is not None and batch.overlap == 2 and batch.items.count() == 4
    page = response.content.decode()
    assert f"Batch {batch.name} (4 comparisons) is open to annotators." in page
    assert "no judgments yet" in page

    # alice prefers the policy on three items, bob prefers the reference on one.
    for n, item in enumerate(batch.items.order_by("pk")[:3]):
        Judgment.objects.create(item=item, annotator=alice, rating=Rating.from_choice(item.source["policy_response"]))
        if n == 0:
            Judgment.objects.create(
                item=item, annotator=bob, rating=Rating.from_choice(item.source["reference_response"])
            )
    response = charlie_client.get(url("run_human", finished_run), HTTP_HX_REQUEST="true")
    fragment = response.content.decode()
    assert response.status_code == 200  # still judging: keep polling
    assert "3 of 4" in fragment and "0.75" in fragment  # human 3/4; the reward model's 0.75 too
    assert "0.30 – 0.95" in fragment  # Wilson 95 % for 3 of 4


def test_sft_run_page_offers_it_as_the_base_of_a_reinforce_run(charlie_client, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    folder = settings.ARTIFACTS_DIR / "policy-sft"
    (folder / "final").mkdir(parents=True)
    run = PolicyRun.objects.create(
        kind=PolicyRun.Kind.SFT,
        status=RunStatus.SUCCEEDED,
        artifact_path=str(folder),
        config={"epochs": 1, "learning_rate": 2e-5, "batch_size": 4, "dialogues": 3},
        metrics={"first_loss": 2.5, "final_loss": 1.25, "examples": 3},
    )
    PolicyLog.objects.create(run=run, step=1, metrics={"loss": 2.5})
    page = charlie_client.get(url("run_detail", run)).content.decode()
    assert "Loss 2.500 → 1.250 on 3 dialogues" in page
    assert "Send to annotators" not in page

    form_page = charlie_client.get(url("run_new") + f"?base_run={run.pk}").content.decode()
    assert f'<option value="{run.pk}" selected>' in form_page


def test_counts_of_one_are_singular(charlie_client, reward_run):
    """ "1 step of 1 prompt × n=1 sample", "1 held-out prompt", "(1 comparison)": no "1 steps", no "prompt(s)"."""
    from django.utils import timezone

    run = finished_run_with_answers(reward_run, answers=1)
    run.step, run.total_steps = 1, 1
    run.started_at, run.finished_at = run.created_at, timezone.now()
    run.config = {"steps": 1, "prompts_per_step": 1, "samples_per_prompt": 1, "train_prompts": 1, "eval_prompts": 1}
    run.save()

    page = charlie_client.get(url("run_detail", run)).content.decode()
    sent = charlie_client.post(url("run_send", run), {"overlap": 1}, follow=True).content.decode()

    assert "1 step of 1 prompt × n=1 sample," in page
    assert "(1 held-out prompt)" in page
    assert "(1 step)." in page
    assert "(s)" not in page and "1 steps" not in page
    assert "(1 comparison) is open to annotators." in sent


def test_sft_counts_are_plural_or_singular_as_they_come(charlie_client):
    run = PolicyRun.objects.create(
        kind=PolicyRun.Kind.SFT,
        status=RunStatus.SUCCEEDED,
        config={"dialogues": 1, "epochs": 2, "learning_rate": 1e-5, "batch_size": 1},
        metrics={"first_loss": 2.0, "final_loss": 1.0, "examples": 1},
    )
    page = charlie_client.get(url("run_detail", run)).content.decode()
    assert ": 1 dialogue</dd>" in page and "2 epochs," in page and "on 1 dialogue." in page
    assert "(s)" not in page


# Evaluation that can tell --------------------------------------------------------------------------


def test_run_page_gives_counts_intervals_and_says_when_the_reference_is_not_beaten(
    charlie_client, finished_run, tmp_path
):
    judge = succeeded_reward_run(tmp_path / "judge")
    finished_run.judge_run = judge
    # The reward model: 5 of 8 (interval 0.31–0.86, spans 0.5); the judge: 58 of 64 (clearly above).
    finished_run.metrics = {
        **finished_run.metrics,
        "win_rate": 0.625,
        **{"win_wins": 5, "win_n": 8, "judge_win_rate": 58 / 64, "judge_win_wins": 58, "judge_win_n": 64},
        "eval_prompts": 8,
    }
    finished_run.save()
    page = charlie_client.get(url("run_detail", finished_run)).content.decode()
    assert "On 8 held-out prompts" in page
    assert "5 of 8" in page and "0.31 – 0.86" in page
    assert "not distinguishable from the reference yet" in page
    assert "58 of 64" in page and "better than the reference" in page
    assert f"Judge: {judge}" in page
    lineage = charlie_client.get(reverse("policy:lineage", args=["policy", finished_run.pk])).content.decode()
    assert "0.62 (n = 8; 95 % 0.31–0.86), not distinguishable from the reference yet" in lineage
    assert "0.91 (n = 64; 95 % 0.81–0.96)" in lineage

    body = charlie_client.get(f"/api/policy-runs/{finished_run.pk}/").json()
    reward_model, judge_rate = body["win_rates"]["reward_model"], body["win_rates"]["judge"]
    assert (reward_model["wins"], reward_model["n"]) == (5, 8)
    assert reward_model["low"] == pytest.approx(0.3057, abs=1e-3)
    assert reward_model["verdict"] == "not distinguishable from the reference yet"
    assert judge_rate["n"] == 64 and judge_rate["low"] > 0.5 and body["win_rates"]["human"] is None


def test_win_rates_plot_reward_model_and_judge_against_steps_or_kl(charlie_client, finished_run):
    for step, (rate, judge, kl) in enumerate([(0.5, 0.5, 0.0), (0.8, 0.6, 1.5), (0.95, 0.55, 4.0)], start=1):
        PolicyLog.objects.create(
            run=finished_run,
            step=10 + step,
            metrics={"eval_win_rate": rate, "eval_judge_win_rate": judge, "eval_kl": kl},
        )
    page = charlie_client.get(url("run_detail", finished_run)).content.decode()
    assert '<tspan class="judge">judge</tspan>' in page and "judge at step 13: 0.55" in page
    page = charlie_client.get(url("run_detail", finished_run) + "?x=kl").content.decode()
    assert "KL (nats per answer)" in page and "judge at KL (nats per answer) 4.0: 0.55" in page


def test_an_old_run_without_counts_shows_its_rate_over_its_held_out_prompts(finished_run):
    finished_run.config = {"eval_prompts": 4, "eval_max_prompts": 8}
    rate = finished_run.reward_model_win_rate
    assert (rate.wins, rate.n, rate.rate) == (3, 4, 0.75)


def test_a_judge_must_be_another_succeeded_reward_model(charlie, reward_run, tmp_path):
    batch = prompts_batch()
    with pytest.raises(PolicyRunError, match="must not be the run's own reward model"):
        start_policy_run(charlie, "reinforce", reward_run=reward_run, judge_run=reward_run, data_batch=batch)
    failed = RewardModelRun.objects.create(status=RunStatus.FAILED)
    with pytest.raises(PolicyRunError, match=f"Judge reward run {failed.pk} is failed"):
        start_policy_run(charlie, "reinforce", reward_run=reward_run, judge_run=failed, data_batch=batch)
    judge = succeeded_reward_run(tmp_path / "judge")
    run = start_policy_run(
        charlie, "reinforce", reward_run=reward_run, judge_run=judge, data_batch=batch, dispatch=False
    )
    assert run.judge_run == judge


def test_the_form_and_the_api_refuse_the_reward_model_as_its_own_judge(charlie_client, reward_run):
    batch = prompts_batch()
    response = charlie_client.post(
        url("run_new"), {"reward_run": reward_run.pk, "judge_run": reward_run.pk, "data_batch": batch.pk}
    )
    assert "The judge must be another reward model" in response.content.decode()
    response = charlie_client.post(
        "/api/policy-runs/",
        {"reward_run": reward_run.pk, "judge_run": reward_run.pk, "data_batch": batch.pk},
        content_type="application/json",
    )
    assert response.status_code == 400 and "must not be the run's own reward model" in response.content.decode()
    assert not PolicyRun.objects.filter(judge_run=reward_run).exists()


@pytest.mark.django_db
def test_the_base_checkpoint_is_a_choice_of_what_the_picked_run_saved(charlie_client, tmp_path):
    folder = tmp_path / "policy-earlier"
    for name in ("final", "checkpoint-10", "checkpoint-2"):
        (folder / name).mkdir(parents=True)
    earlier = PolicyRun.objects.create(status=RunStatus.SUCCEEDED, artifact_path=str(folder))

    options = charlie_client.get(reverse("policy:base_checkpoints"), {"base_run": earlier.pk}).content.decode()
    assert options == (
        '<option value="">Final model</option><option value="checkpoint-2">Checkpoint at step 2</option>'
        '<option value="checkpoint-10">Checkpoint at step 10</option>'
    )
    assert charlie_client.get(reverse("policy:base_checkpoints"), {"base_run": "x"}).content.decode() == (
        '<option value="">Final model</option>'
    )

    form = charlie_client.get(reverse("policy:run_new"), {"base_run": earlier.pk}).content.decode()
    assert '<select name="base_checkpoint"' in form and "Checkpoint at step 10" in form
    assert f'hx-get="{reverse("policy:base_checkpoints")}"' in form and 'hx-target="#id_base_checkpoint"' in form
    page = charlie_client.post(
        reverse("policy:run_new"), {"base_run": earlier.pk, "base_checkpoint": "checkpoint-9"}
    ).content.decode()
    assert "Select a valid choice. checkpoint-9 is not one of the available choices." in page
