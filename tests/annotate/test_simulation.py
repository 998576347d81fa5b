"""Simulated annotators answer an open batch through the services people use; their judgments are marked simulated
and left out of exports and reward training unless asked for."""

from __future__ import annotations

import pytest

from annotate.export import ExportFilters, raw_rows
from annotate.models import SIMULATED_GROUP, Judgment
from annotate.quality import annotator_quality
from annotate.simulation import SimulationError, simulate_annotators
from rewardmodel.services import RewardRunError, start_reward_run
from tests.annotate.factories import make_batch, make_ranking_batch

pytestmark = pytest.mark.django_db


def prefers_second(prompts: list[list[dict]], responses: list[str]) -> list[float]:
    """A scorer that likes "second" answers (and, in rankings, higher answer numbers) by a wide margin."""
    return [
        10.0 * ("second" in r) + float(r.split()[1]) if r.startswith("answer") else 10.0 * ("second" in r)
        for r in responses
    ]


def test_simulated_annotators_answer_a_pairwise_batch_by_the_scores(alice):
    batch = make_batch("sim", n_items=12, overlap=3, samples_per_hit=5)
    result = simulate_annotators(batch, prefers_second, 3, temperature=0.5, seed=1)
    judgments = Judgment.objects.filter(item__batch=batch)
    assert result.judgments == judgments.count() == 36 and result.annotators == [
        "simulated-1",
        "simulated-2",
        "simulated-3",
    ]
    # A 10-point gap at temperature 0.5: every simulated annotator picks the second answer, clearly.
    assert set(judgments.values_list("rating", flat=True)) == {2}
    assert judgments.simulated().count() == 36 and judgments.by_people().count() == 0
    assert all(hit.submitted_at for hit in batch.hits.all())
    # Run again: no work is left for them, nothing changes.
    assert simulate_annotators(batch, prefers_second, 3).judgments == 0


def test_random_answers_and_position_bias_are_noise_on_the_scores():
    batch = make_batch("noisy", n_items=40, overlap=1)
    simulate_annotators(batch, prefers_second, 1, random_share=1.0, seed=3)
    ratings = list(Judgment.objects.filter(item__batch=batch).values_list("rating", flat=True))
    assert 0 < sum(r > 0 for r in ratings) < 40  # coin flips, not the scores
    first_shown = make_batch("first-shown", n_items=40, overlap=1)
    simulate_annotators(first_shown, lambda p, r: [0.0] * len(r), 1, position_bias=10.0, seed=4)
    assert all(j.shown_first_chosen for j in Judgment.objects.filter(item__batch=first_shown))


def test_a_ranking_batch_is_ranked_by_the_scores():
    batch = make_ranking_batch("ranked", n_items=4, size=4, overlap=2)
    simulate_annotators(batch, lambda prompts, responses: [float(r.split()[1]) for r in responses], 2, temperature=0.01)
    rankings = list(Judgment.objects.filter(item__batch=batch).values_list("ranking", flat=True))
    assert len(rankings) == 8 and all(ranking == [[4], [3], [2], [1]] for ranking in rankings)


def test_bad_settings_and_closed_batches_are_refused():
    batch = make_batch("closed", active=False)
    with pytest.raises(SimulationError, match="is closed"):
        simulate_annotators(batch, prefers_second, 1)
    open_batch = make_batch("open")
    for settings, message in (
        ({"n": 0}, "annotators must be between 1 and 100"),
        ({"temperature": 0}, "temperature must be above 0"),
        ({"random_share": 1.5}, "random share must be between 0 and 1"),
    ):
        with pytest.raises(SimulationError, match=message):
            simulate_annotators(open_batch, prefers_second, **settings)


def test_simulated_judgments_are_marked_and_left_out_unless_asked_for(alice, charlie):
    batch = make_batch("mixed", n_items=6, overlap=2, samples_per_hit=6)
    Judgment.objects.bulk_create(Judgment(item=item, annotator=alice, rating=-2) for item in batch.items.order_by("pk"))
    simulate_annotators(batch, prefers_second, 1)
    assert Judgment.objects.filter(item__batch=batch).count() == 12

    rows = list(raw_rows(ExportFilters(batches=["mixed"])))
    assert len(rows) == 6 and all(not row["annotator"].startswith("simulated") for row in rows)
    rows = list(raw_rows(ExportFilters(batches=["mixed"], include_simulated=True)))
    assert len(rows) == 12 and sum(row["annotator"] == "simulated-1" for row in rows) == 6

    quality = {a.username: a for a in annotator_quality([batch])}
    assert quality["simulated-1"].simulated and not quality["alice"].simulated

    run = start_reward_run(charlie, [batch], dispatch=False)
    assert run.judgments_count == 6
    run = start_reward_run(charlie, [batch], dispatch=False, include_simulated=True)
    assert run.judgments_count == 12


def test_a_batch_of_simulated_judgments_alone_does_not_train_by_default(charlie):
    batch = make_batch("only-simulated", n_items=4)
    simulate_annotators(batch, prefers_second, 1)
    assert charlie.groups.filter(name=SIMULATED_GROUP).exists() is False
    with pytest.raises(RewardRunError, match="No judgments to train on"):
        start_reward_run(charlie, [batch], dispatch=False)
