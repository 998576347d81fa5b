"""Sending a policy's n held-out answers and the reference's to annotators as one K-way ranking item per prompt,
from the run page, the API and the command; and what the page then says."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from annotate.models import Batch
from policy.errors import PolicyRunError
from policy.evaluation import ranked_win_rate, send_to_annotators
from policy.models import PolicyRun
from tests.policy.helpers import finished_run_with_answers, succeeded_reward_run


@pytest.fixture
def reward_run(db, tmp_path):
    return succeeded_reward_run(tmp_path / "reward")


def with_n_answers(run: PolicyRun, n: int) -> PolicyRun:
    """The run as the trainer now leaves it: n answers of the final policy per held-out prompt."""
    for number, sample in enumerate(run.eval_samples):
        sample["policy_responses"] = [f"policy answer {number}.{k}" for k in range(n)]
        sample["policy_rewards"] = [0.1 * k for k in range(n)]
    run.save(update_fields=["eval_samples"])
    return run


def test_a_ranking_batch_holds_n_policy_answers_and_the_reference_in_random_places(charlie, reward_run):
    run = with_n_answers(finished_run_with_answers(reward_run, answers=30), 3)
    batch = send_to_annotators(run, charlie, kind="ranking", overlap=2)
    assert (batch.kind, batch.ranking_size, batch.overlap) == (Batch.Kind.RANKING, 4, 2)
    assert batch.priority == Batch.objects.top_priority() - 1, "at the front of the queue"
    places = []
    for item, sample in zip(batch.items.order_by("pk"), run.eval_samples, strict=True):
        reference = item.source["reference_response"]
        assert item.response(reference) == sample["reference_response"]
        assert sorted(item.source["policy_responses"] + [reference]) == [1, 2, 3, 4]
        assert sorted(item.response(k) for k in item.source["policy_responses"]) == sample["policy_responses"]
        places.append(reference)
    assert len(set(places)) > 1, "the reference is not always in the same place"
    assert run.annotation_batch is None, "the pairwise batch is a separate one"
    assert ranked_win_rate(run).n == 0


def test_more_than_eight_answers_keep_the_first_eight(charlie, reward_run):
    run = with_n_answers(finished_run_with_answers(reward_run, answers=2), 12)
    batch = send_to_annotators(run, charlie, kind="ranking")
    assert batch.ranking_size == 9 and all(item.response_count == 9 for item in batch.items.all())


def test_a_run_that_kept_one_answer_per_prompt_cannot_make_a_ranking_batch(charlie, reward_run):
    old = finished_run_with_answers(reward_run)
    with pytest.raises(PolicyRunError, match="a ranking needs at least 2"):
        send_to_annotators(old, charlie, kind="ranking")
    with pytest.raises(PolicyRunError, match="kind must be one of"):
        send_to_annotators(old, charlie, kind="triplets")
    assert not Batch.objects.filter(kind=Batch.Kind.RANKING).exists()


def test_an_empty_answer_is_refused_as_an_import_would_refuse_it(charlie, reward_run):
    run = with_n_answers(finished_run_with_answers(reward_run), 2)
    run.eval_samples[1]["policy_responses"][0] = "  "
    run.save(update_fields=["eval_samples"])
    with pytest.raises(PolicyRunError, match="an answer to held-out prompt 2 is empty"):
        send_to_annotators(run, charlie, kind="ranking")
    assert not Batch.objects.filter(kind=Batch.Kind.RANKING).exists() and run.ranking_batch is None


def test_the_run_page_sends_a_ranking_batch_and_shows_its_figures(charlie, charlie_client, reward_run):
    run = with_n_answers(finished_run_with_answers(reward_run), 2)
    page = charlie_client.get(run.get_absolute_url()).content.decode()
    assert "Send to annotators as a ranking batch" in page and "(K = 3)" in page
    assert "Lineage" in page
    response = charlie_client.post(
        f"/dashboard/policy/{run.pk}/send/", {"kind": "ranking", "overlap": "1"}, follow=True
    )
    assert "4 ranking items" in response.content.decode()
    run.refresh_from_db()
    assert run.ranking_batch is not None and run.ranking_batch.is_ranking
    page = charlie_client.get(run.get_absolute_url()).content.decode()
    assert run.ranking_batch.name in page and "no rankings yet" in page
    lineage = charlie_client.get(f"/dashboard/policy/lineage/policy/{run.pk}/").content.decode()
    assert f"Reward model {reward_run.pk}" in lineage and f"Batch {run.ranking_batch.name}" in lineage


def test_the_api_and_the_command_send_a_ranking_batch(charlie, reward_run):
    run = with_n_answers(finished_run_with_answers(reward_run), 2)
    api = APIClient()
    api.force_authenticate(charlie)
    response = api.post(f"/api/policy-runs/{run.pk}/send-to-annotators/", {"kind": "ranking"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "ranking" and response.json()["items"] == 4
    assert api.get(f"/api/policy-runs/{run.pk}/").json()["ranking_batch"] == response.json()["batch"]
    assert api.get(f"/api/policy-runs/{run.pk}/ranked-win-rate/").json()["n"] == 0

    out = StringIO()
    call_command("send_to_annotators", str(run.pk), "--kind", "ranking", stdout=out)
    assert json.loads(out.getvalue())["batch"] == response.json()["batch"], "sending again: the same batch"
    out = StringIO()
    call_command("send_to_annotators", str(run.pk), stdout=out)
    assert json.loads(out.getvalue())["kind"] == "pairwise"
    with pytest.raises(CommandError, match="No policy run"):
        call_command("send_to_annotators", "999999")
