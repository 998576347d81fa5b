"""Using what training made, through the API as on the run pages: score with a reward model, download
a reward model or a policy (final or a checkpoint) as a zip that from_pretrained loads, browse samples.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from policy.models import PolicySample
from rewardmodel.models import RewardModelRun
from rewardmodel.services import run_score_job, score_with_run
from tests.policy.conftest import build_policy
from tests.policy.helpers import finished_run_with_answers, succeeded_reward_run


@pytest.fixture
def staff(charlie) -> APIClient:
    client = APIClient()
    client.force_authenticate(charlie)
    return client


@pytest.fixture
def reward_run(db, tmp_path) -> RewardModelRun:
    return succeeded_reward_run(tmp_path / "reward-model")


def unzip(response) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


# Reward models -------------------------------------------------------------------------------------


def scored(staff, run: RewardModelRun, entry: dict) -> dict:
    """Start a scoring through the API (202, the job), run the worker's side here, and read the job back."""
    response = staff.post(f"/api/reward-runs/{run.pk}/score/", entry, format="json")
    assert response.status_code == 202, response.content
    job = response.json()
    assert (job["status"], job["reward_1"], job["preferred"]) == ("queued", None, None)
    assert run_score_job(job["id"]) == "done"
    return staff.get(f"/api/score-jobs/{job['id']}/").json()


def test_score_returns_both_rewards_from_the_run_model(staff, reward_run):
    entry = {"prompt": "tell me about the red cat ?", "response_1": "it is good", "response_2": "it is bad ."}
    body = scored(staff, reward_run, entry)
    assert body["status"] == "done" and body["error"] == ""
    assert (body["reward_1"], body["reward_2"]) == score_with_run(reward_run, **entry)
    assert body["reward_1"] != body["reward_2"]
    assert body["preferred"] == (1 if body["reward_1"] > body["reward_2"] else 2)

    # Swapping the responses swaps the rewards: each response is scored on its own.
    swapped = {**entry, "response_1": entry["response_2"], "response_2": entry["response_1"]}
    again = scored(staff, reward_run, swapped)
    assert again["reward_1"] == pytest.approx(body["reward_2"]) and again["preferred"] == 3 - body["preferred"]


def test_scoring_never_loads_the_model_in_the_web_process(staff, reward_run, monkeypatch):
    """The fault: the API loaded the model inside the gunicorn worker (20-30 s, ~490 MB each)."""
    from rewardmodel import train

    def no_model_here(*args, **kwargs):
        raise AssertionError("the web request loaded the model")

    monkeypatch.setattr(train, "load_reward_model", no_model_here)
    entry = {"prompt": "tell me", "response_1": "good", "response_2": "bad"}
    response = staff.post(f"/api/reward-runs/{reward_run.pk}/score/", entry, format="json")
    assert response.status_code == 202 and response.json()["status"] == "queued"


def test_score_errors_name_the_field_or_say_there_is_no_model(staff, reward_run):
    url = f"/api/reward-runs/{reward_run.pk}/score/"
    response = staff.post(url, {"prompt": "tell me", "response_1": "x"}, format="json")
    assert response.status_code == 400 and set(response.json()) == {"response_2"}
    response = staff.post(url, {"prompt": "tell me", "response_1": "", "response_2": "x"}, format="json")
    assert response.json() == {"response_1": ["This field may not be blank."]}
    response = staff.post(url, {"prompt": "   ", "response_1": "a", "response_2": "b"}, format="json")
    assert response.json() == {"non_field_errors": ["Enter a prompt."]}, "the page's own check"

    queued = RewardModelRun.objects.create()
    response = staff.post(f"/api/reward-runs/{queued.pk}/score/", {"prompt": "p", "response_1": "a", "response_2": "b"})
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": [f"Run {queued.pk} has no trained model (status: Queued)."]}


def test_download_is_the_pages_zip_and_loads_with_from_pretrained(staff, charlie_client, reward_run, tmp_path):
    response = staff.get(f"/api/reward-runs/{reward_run.pk}/download/")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="reward-model.zip"'
    archive = unzip(response)
    page = unzip(charlie_client.get(reverse("rewardmodel:run_download", args=[reward_run.pk])))
    assert archive.namelist() == page.namelist() and "reward-model/config.json" in archive.namelist()
    assert all(archive.read(name) == page.read(name) for name in archive.namelist())

    archive.extractall(tmp_path / "unzipped")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "unzipped" / "reward-model")
    assert model.config.num_labels == 1
    assert staff.get(f"/api/reward-runs/{reward_run.pk}/").json()["has_model"] is True


def test_a_run_without_a_model_has_nothing_to_download(staff):
    run = RewardModelRun.objects.create()
    response = staff.get(f"/api/reward-runs/{run.pk}/download/", HTTP_ACCEPT="application/zip")
    assert response.status_code == 404
    assert response.json() == {"detail": f"Reward run {run.pk} has no trained model to download."}
    assert staff.get(f"/api/reward-runs/{run.pk}/").json()["has_model"] is False


# Policies ------------------------------------------------------------------------------------------


@pytest.fixture
def policy_run(reward_run, tmp_path):
    """A succeeded run whose folder holds a real tiny final model and one checkpoint."""
    run = finished_run_with_answers(reward_run)
    folder = tmp_path / f"policy-{run.pk}"
    build_policy(folder / "final")
    (folder / "checkpoint-1").mkdir()
    (folder / "checkpoint-1" / "config.json").write_text('{"model_type": "llama"}')
    run.artifact_path = str(folder)
    run.save()
    PolicySample.objects.create(run=run, step=1, prompt=[{"role": "user", "content": "p1"}], response="early")
    PolicySample.objects.create(run=run, step=2, prompt=[{"role": "user", "content": "p2"}], response="late")
    PolicySample.objects.create(
        run=run, step=2, kind=PolicySample.Kind.EVAL, prompt=[{"role": "user", "content": "p3"}], response="held out"
    )
    return run


def test_policy_download_final_loads_and_checkpoints_are_listed(staff, policy_run, tmp_path):
    detail = staff.get(f"/api/policy-runs/{policy_run.pk}/").json()
    assert detail["checkpoints"] == ["final", "checkpoint-1"]

    response = staff.get(f"/api/policy-runs/{policy_run.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="policy-{policy_run.pk}-final.zip"'
    unzip(response).extractall(tmp_path / "unzipped")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "unzipped" / f"policy-{policy_run.pk}-final")
    assert model.config.model_type == "llama"

    response = staff.get(f"/api/policy-runs/{policy_run.pk}/download/", {"checkpoint": "checkpoint-1"})
    assert unzip(response).namelist() == [f"policy-{policy_run.pk}-checkpoint-1/config.json"]
    for missing in ("checkpoint-99", "..", "../final"):
        response = staff.get(f"/api/policy-runs/{policy_run.pk}/download/", {"checkpoint": missing})
        assert response.status_code == 404
        assert response.json() == {"detail": f"{policy_run} has no model named {missing!r} to download."}


def test_samples_by_step_and_kind_as_the_page_browses_them(staff, policy_run):
    url = f"/api/policy-runs/{policy_run.pk}/samples/"

    def responses(**query) -> list[str]:
        return [row["response"] for row in staff.get(url, query).json()["results"]]

    assert responses() == ["early", "late", "held out"]
    assert responses(step=2) == ["late", "held out"]
    assert responses(step=2, kind="eval") == ["held out"]
    assert responses(step=1, kind="eval") == []
    response = staff.get(url, {"kind": "best"})
    assert response.status_code == 400 and "kind" in response.json()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_scores_and_the_client_polls_the_job(celery_worker, charlie, tmp_path):
    from tests.worker import wait_for

    client = APIClient()
    client.force_authenticate(charlie)
    run = succeeded_reward_run(tmp_path / "reward-model")
    entry = {"prompt": "tell me about the red cat ?", "response_1": "it is good", "response_2": "it is bad ."}

    job = client.post(f"/api/reward-runs/{run.pk}/score/", entry, format="json").json()

    url = f"/api/score-jobs/{job['id']}/"
    wait_for(lambda: client.get(url).json()["status"] in ("done", "failed"), timeout=90, message=celery_worker.log())
    body = client.get(url).json()
    assert body["status"] == "done", body["error"]
    assert (body["reward_1"], body["reward_2"]) == pytest.approx(score_with_run(run, **entry))
