"""Scoring a batch's open items for model-ordered assignment: the existing batch scorer, chunks, resume, rescoring
when a newer run succeeds, and the staff page that switches the order."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from annotate.models import Batch, Item, Judgment, Rating
from annotate.services import assign_hit
from rewardmodel.models import BatchOrdering, ItemScore, RewardModelRun
from rewardmodel.ordering import (
    item_uncertainty,
    ordering_of,
    refresh_after_run,
    score_batch_for_ordering,
    set_model_ordering,
)
from rewardmodel.services import RewardRunError
from rewardmodel.train import load_reward_model
from runs.models import RunStatus
from tests.annotate.factories import make_batch, make_ranking_batch
from tests.rewardmodel.helpers import build_tiny_backbone


@pytest.fixture(scope="module")
def tiny_scorer(tmp_path_factory):
    return load_reward_model(build_tiny_backbone(tmp_path_factory.mktemp("tiny-order")), device="cpu")


class LengthScorer:
    """A stand-in model: reward = length of the response times `scale`; records how much it was asked at once."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.calls: list[int] = []

    def score_batch(self, prompts, responses, batch_size: int = 32) -> list[float]:
        self.calls.append(len(responses))
        return [self.scale * len(response) for response in responses]


def succeeded_run(*batches: Batch) -> RewardModelRun:
    run = RewardModelRun.objects.create(status=RunStatus.SUCCEEDED, finished_at=timezone.now(), artifact_path="m")
    run.batches.set(batches)
    return run


def test_open_items_are_scored_with_the_batch_scorer(alice, tiny_scorer):
    batch = make_batch(n_items=10, overlap=1)
    judged = batch.items.get(external_id="0")
    Judgment.objects.create(item=judged, annotator=alice, rating=Rating.RESPONSE_1_BETTER)
    run = succeeded_run(batch)
    assert score_batch_for_ordering(batch, run, chunk_size=4, scorer=tiny_scorer) == 9
    item = batch.items.get(external_id="3")
    r1, r2 = tiny_scorer.score_batch([item.chat_messages()] * 2, [item.response_1, item.response_2])
    assert item.uncertainty == pytest.approx(abs(r1 - r2), abs=1e-5)
    assert batch.items.get(external_id="0").uncertainty is None, "an item judged to its overlap is not scored"
    ordering = ordering_of(batch)
    assert (ordering.status, ordering.scored_run, ordering.items_scored, ordering.items_total) == ("done", run, 9, 9)
    assert ordering.items_per_second > 0


def test_scoring_streams_in_chunks_and_resumes_where_it_stopped(db):
    batch = make_batch(n_items=11)
    run = succeeded_run(batch)
    scorer = LengthScorer()
    assert score_batch_for_ordering(batch, run, chunk_size=4, scorer=scorer) == 11
    assert scorer.calls == [8, 8, 6], "two responses per item, at most a chunk of items per call"
    ItemScore.objects.filter(run=run, item__external_id__in=["1", "5"]).delete()
    Item.objects.filter(batch=batch).update(uncertainty=None)
    again = LengthScorer()
    assert score_batch_for_ordering(batch, run, chunk_size=4, scorer=again) == 2, "only what was not scored"
    assert again.calls == [4]
    assert not batch.items.filter(uncertainty__isnull=True).exists(), "stored scores are put back as priorities"


def test_a_ranking_item_is_as_uncertain_as_its_closest_neighbours(db):
    batch = make_ranking_batch(n_items=2, size=4)
    Item.objects.filter(batch=batch, external_id="0").update(more_responses=["xxxxxxxxxxx", "x"])
    score_batch_for_ordering(batch, succeeded_run(batch), scorer=LengthScorer())
    # lengths: "answer 1 to 0" = 13, "answer 2 to 0" = 13, 11, 1 -> smallest neighbour gap 0
    assert batch.items.get(external_id="0").uncertainty == 0
    assert item_uncertainty([1.0, 5.0, 2.5]) == 1.5
    assert item_uncertainty([3.0, 1.0]) == 2.0


def test_priorities_refresh_after_a_newer_run_succeeds(db):
    batch = make_batch(n_items=6)
    first = succeeded_run(batch)
    ordering = set_model_ordering(batch, enabled=True, exploration_share=0.1, dispatch=False)
    assert ordering.status == "queued"
    batch.refresh_from_db()
    assert (batch.assignment_order, batch.exploration_share) == ("uncertainty", 0.1)
    score_batch_for_ordering(batch, first, scorer=LengthScorer(scale=1.0))
    before = dict(batch.items.values_list("external_id", "uncertainty"))

    second = succeeded_run(batch)
    assert refresh_after_run(second, dispatch=False) == [ordering]
    assert ordering_of(batch).status == "queued"
    score_batch_for_ordering(batch, second, scorer=LengthScorer(scale=3.0))
    after = dict(batch.items.values_list("external_id", "uncertainty"))
    assert ordering_of(batch).scored_run == second
    assert after == {k: 3.0 * v for k, v in before.items()}


def test_no_automatic_refresh_with_the_button_setting_or_a_pinned_run(db):
    batch = make_batch(n_items=3)
    pinned = succeeded_run(batch)
    set_model_ordering(batch, enabled=True, refresh=BatchOrdering.Refresh.BUTTON, dispatch=False)
    assert refresh_after_run(succeeded_run(batch), dispatch=False) == []
    set_model_ordering(batch, enabled=True, run=pinned, refresh=BatchOrdering.Refresh.AUTO, dispatch=False)
    assert refresh_after_run(succeeded_run(batch), dispatch=False) == [], "a pinned run stays"


def test_switching_on_needs_a_run(db):
    batch = make_batch(n_items=3)
    with pytest.raises(RewardRunError, match="No succeeded reward-model run"):
        set_model_ordering(batch, enabled=True, dispatch=False)
    with pytest.raises(RewardRunError, match="exploration share"):
        set_model_ordering(batch, enabled=False, exploration_share=1.5, dispatch=False)


def test_an_admin_switches_the_order_on_the_dashboard_and_sees_it_change(
    curator, alice, django_capture_on_commit_callbacks
):
    batch = make_batch(n_items=6, samples_per_hit=2)
    run = succeeded_run(batch)
    score_batch_for_ordering(batch, run, scorer=LengthScorer())
    Item.objects.filter(batch=batch, external_id="4").update(uncertainty=0.0)
    client = Client()
    client.force_login(curator)
    page = client.get("/dashboard/queue/").content.decode()
    assert f"/dashboard/ordering/{batch.pk}/" in page and "Import order" in page
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = client.post(
            f"/dashboard/ordering/{batch.pk}/save/",
            {"order": "uncertainty", "run": "", "exploration_share": "0", "refresh": "auto"},
        )
    assert response.status_code == 302
    assert not sent, "the run's scores are in use already: nothing to score"
    page = client.get(f"/dashboard/ordering/{batch.pk}/").content.decode()
    assert "reward-model order" in page and 'id="next-items"' in page
    assert page.index("Question number 4?") < page.index("Question number 0?"), "the least certain item is next"
    assert [s.item.external_id for s in assign_hit(alice).ordered_slots()][0] == "4"
    queue = client.get("/dashboard/queue/").content.decode()
    assert "Reward model (0.00 random)" in queue


def test_the_order_form_refuses_a_bad_share(curator):
    batch = make_batch(n_items=2)
    client = Client()
    client.force_login(curator)
    response = client.post(
        f"/dashboard/ordering/{batch.pk}/save/",
        {"order": "uncertainty", "run": "", "exploration_share": "2", "refresh": "auto"},
    )
    assert response.status_code == 400
    assert "less than or equal to 1" in response.content.decode()


# Through the tasks and a real training run -------------------------------------------------------------------------


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.ARTIFACTS_DIR


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-order-backbone"))


def test_the_scoring_tasks_load_the_runs_model(alice, tiny_backbone):
    from rewardmodel.tasks import score_batch_items, score_judged_items

    batch = make_batch(n_items=5)
    Judgment.objects.create(item=batch.items.first(), annotator=alice, rating=Rating.RESPONSE_2_BETTER)
    run = RewardModelRun.objects.create(
        status=RunStatus.SUCCEEDED, finished_at=timezone.now(), artifact_path=tiny_backbone
    )
    run.batches.set([batch])
    assert score_batch_items.run(batch.pk, run.pk) == 4
    assert score_judged_items.run(run.pk, [batch.pk], 10) == 1
    assert ItemScore.objects.filter(run=run).count() == 5


def test_a_run_that_succeeds_sends_the_batches_that_follow_it_to_rescoring(
    charlie, alice, tiny_backbone, artifacts, django_capture_on_commit_callbacks
):
    from rewardmodel.services import run_reward_training, start_reward_run
    from tests.rewardmodel.helpers import judged_batch

    batch = judged_batch("loop", alice)
    Item.objects.create(
        batch=batch,
        external_id="open",
        prompt=[{"role": "user", "content": "why ?"}],
        response_1="good",
        response_2="bad",
    )
    Batch.objects.filter(pk=batch.pk).update(assignment_order=Batch.AssignmentOrder.UNCERTAINTY)
    BatchOrdering.objects.create(batch=batch)
    options = {"epochs": 1, "batch_size": 4, "eval_fraction": 0.25, "log_every": 1, "learning_rate": 1e-3}
    run = start_reward_run(charlie, [batch], backbone=tiny_backbone, dispatch=False, **options)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        run = run_reward_training(run)
    assert run.status == RunStatus.SUCCEEDED
    assert ordering_of(batch).status == "queued" and len(sent) == 1
