"""Reward models trained from rankings: the pairs a ranking gives and their weights, pairs drawn per ranking each
epoch, held-out accuracy on ranking pairs apart from pairwise ones, Kendall's tau, and starting from an earlier model.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Batch, Item, Judgment
from rewardmodel.models import RewardModelRun
from rewardmodel.services import (
    RewardRunError,
    pairs_from_judgments,
    rankings_from_judgments,
    run_reward_training,
    start_reward_run,
)
from rewardmodel.train.data import EncodedPairs
from rewardmodel.train.trainer import EncodedRankings, evaluate_rankings, sample_pairs
from runs.models import RunStatus
from tests.annotate.factories import make_ranking_batch
from tests.rewardmodel.helpers import COLORS, build_tiny_backbone, judged_batch

TINY = {"epochs": 2, "batch_size": 4, "eval_fraction": 0.5, "log_every": 1, "learning_rate": 1e-3}
QUALITY = ("good", "fine", "poor", "bad")


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> str:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-backbone"))


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.ARTIFACTS_DIR


def ranked_batch(name: str, annotators, items: int = 12) -> Batch:
    """K = 4 answers per prompt; every annotator ranks them good > fine > poor > bad."""
    batch = Batch.objects.create(name=name, kind=Batch.Kind.RANKING, ranking_size=4)
    for n in range(items):
        color = COLORS[n % len(COLORS)]
        words = QUALITY[n % 4 :] + QUALITY[: n % 4]
        answers = [f"the {color} answer is {word} ." for word in words]
        item = Item.objects.create(
            batch=batch,
            external_id=str(n),
            prompt=[{"role": "user", "content": f"tell me about the {color} dog {n} ?"}],
            response_1=answers[0],
            response_2=answers[1],
            more_responses=answers[2:],
        )
        order = [[words.index(word) + 1] for word in QUALITY]
        for annotator in annotators:
            Judgment.objects.create(item=item, annotator=annotator, ranking=order)
    return batch


def encoded(rankings: dict[str, int], pairwise: int = 0) -> EncodedPairs:
    """Pairs without text: `rankings` maps a ranking's key to its pair count (weights 1/pairs), plus pairwise ones."""
    keys = [key for key, count in rankings.items() for _ in range(count)] + [""] * pairwise
    weights = [1 / rankings[key] if key else 1.0 for key in keys]
    return EncodedPairs(
        chosen=[[1]] * len(keys),
        rejected=[[2]] * len(keys),
        levels=[""] * len(keys),
        weights=weights,
        groups=[key or f"pair-{i}" for i, key in enumerate(keys)],
        rankings=keys,
    )


def weight_per_ranking(pairs_encoded: EncodedPairs, indices: list[int], weights: list[float]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for index in indices:
        totals[pairs_encoded.rankings[index]] += weights[index]
    return dict(totals)


# Pairs and their weights ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_ranking_gives_all_its_pairs_weighted_one_over_c_k_2(alice, bob):
    batch = ranked_batch("ranked", [alice, bob], items=3)
    pairs = pairs_from_judgments(Judgment.objects.filter(item__batch=batch).order_by("pk"))
    assert len(pairs) == 2 * 3 * 6, "two annotators x three items x C(4,2)"
    totals: dict[str, float] = defaultdict(float)
    for pair in pairs:
        totals[pair.ranking] += pair.weight
        assert pair.weight == pytest.approx(1 / 6)
        better = QUALITY.index(pair.chosen.split()[-2])
        worse = QUALITY.index(pair.rejected.split()[-2])
        assert better < worse, "the chosen answer is the one people ranked higher"
    assert len(totals) == 6 and all(total == pytest.approx(1.0) for total in totals.values())


@pytest.mark.django_db
def test_borda_makes_one_ranking_per_item_and_ties_give_no_pair(alice, bob, charlie):
    batch = make_ranking_batch("borda", n_items=1, size=3, allow_ties=True)
    item = batch.items.get()
    # 1 > 2 > 3, 2 > 1 > 3, and 3 > (1 = 2): Borda points 1: 2+1+0.5, 2: 1+2+0.5, 3: 0+0+2 -> 1 = 2 > 3.
    for annotator, tiers in ((alice, [[1], [2], [3]]), (bob, [[2], [1], [3]]), (charlie, [[3], [1, 2]])):
        Judgment.objects.create(item=item, annotator=annotator, ranking=tiers)
    judgments = Judgment.objects.order_by("pk")
    assert [r.tiers for _, r in rankings_from_judgments(judgments, "borda")] == [[[1, 2], [3]]]
    pairs = pairs_from_judgments(judgments, ranking_aggregate="borda")
    assert sorted((p.chosen, p.rejected) for p in pairs) == [
        ("answer 1 to 0", "answer 3 to 0"),
        ("answer 2 to 0", "answer 3 to 0"),
    ]
    assert sum(p.weight for p in pairs) == pytest.approx(1.0), "a tie drops a pair; the ranking still weighs 1"
    assert len(pairs_from_judgments(judgments, ranking_aggregate="each")) == 3 + 3 + 2


def test_pairs_per_ranking_zero_trains_on_every_pair():
    pairs = encoded({"r1": 6, "r2": 3}, pairwise=2)
    indices, weights = sample_pairs(pairs, random.Random(0))
    assert indices == list(range(11))
    assert weight_per_ranking(pairs, indices, weights) == pytest.approx({"r1": 1.0, "r2": 1.0, "": 2.0})


def test_pairs_per_ranking_draws_m_pairs_of_each_ranking_afresh_each_epoch():
    pairs = encoded({"r1": 6, "r2": 3, "r3": 36}, pairwise=2)
    rng = random.Random(0)
    draws = []
    for _epoch in range(5):
        indices, weights = sample_pairs(pairs, rng, per_ranking=2)
        per_ranking = defaultdict(list)
        for index in indices:
            per_ranking[pairs.rankings[index]].append(index)
        assert {key: len(members) for key, members in per_ranking.items()} == {"r1": 2, "r2": 2, "r3": 2, "": 2}
        assert weight_per_ranking(pairs, indices, weights) == pytest.approx({"r1": 1.0, "r2": 1.0, "r3": 1.0, "": 2.0})
        assert all(weights[i] == pytest.approx(0.5) for i in indices if pairs.rankings[i]), "M pairs at 1/M each"
        draws.append(tuple(per_ranking["r3"]))
    assert len(set(draws)) > 1, "every epoch draws again"


# Training --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_on_rankings_and_pairs_reports_both_accuracies_and_kendall_tau(
    alice, bob, charlie, artifacts, tiny_backbone, client
):
    rankings = ranked_batch("ranked", [alice, bob])
    pairwise = judged_batch("pairwise", alice)
    run = start_reward_run(
        charlie, [rankings, pairwise], backbone=tiny_backbone, pairs_per_ranking=3, dispatch=False, **TINY
    )
    run = run_reward_training(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.config["pairs_per_ranking"] == 3 and run.config["ranking_aggregate"] == "each"
    assert run.pairs_count == 24 * 6 + 12
    metrics = run.metrics
    assert metrics["eval_ranking_pairs"] > 0 and metrics["eval_pairwise_pairs"] > 0
    assert metrics["eval_ranking_pairs"] + metrics["eval_pairwise_pairs"] == metrics["eval_pairs"]
    assert 0.0 <= metrics["eval_ranking_accuracy"] <= 1.0 and 0.0 <= metrics["eval_pairwise_accuracy"] <= 1.0
    assert metrics["eval_rankings"] == metrics["eval_ranking_pairs"] // 6, "one tau per held-out ranking"
    assert -1.0 <= metrics["eval_kendall_tau"] <= 1.0

    client.force_login(charlie)
    page = client.get(run.get_absolute_url()).content.decode()
    assert "Pairs from rankings" in page and "Pairwise judgments" in page
    assert "Kendall" in page and f"{metrics['eval_kendall_tau']:.3f}" in page
    assert "3 pairs drawn per ranking each epoch" in page


@pytest.mark.django_db
def test_a_run_can_start_from_an_earlier_reward_model(alice, charlie, artifacts, tiny_backbone, client):
    first_batch = ranked_batch("first", [alice], items=6)
    first = run_reward_training(
        start_reward_run(charlie, [first_batch], backbone=tiny_backbone, dispatch=False, **TINY)
    )
    assert first.status == RunStatus.SUCCEEDED, first.error
    second_batch = ranked_batch("second", [charlie], items=6)
    second = start_reward_run(charlie, [first_batch, second_batch], base_run=first, dispatch=False, **TINY)
    assert second.config["backbone"] == tiny_backbone, "the record names the backbone underneath"
    second = run_reward_training(second)
    assert second.status == RunStatus.SUCCEEDED, second.error
    assert second.base_run == first and list(first.derived_runs.all()) == [second]
    assert f"Reward run {first.pk}" in (second.artifact_dir / "README.md").read_text(), "the model card says so"

    client.force_login(charlie)
    page = client.get(second.get_absolute_url()).content.decode()
    assert f"Reward run {first.pk}" in page
    lineage = client.get(reverse("policy:lineage", args=["reward", second.pk])).content.decode()
    assert lineage.index("Batch first") < lineage.index(f"Reward model {first.pk}") < lineage.index("Batch second")


@pytest.mark.django_db
def test_a_base_run_must_have_a_model_and_the_same_backbone(alice, charlie, tiny_backbone):
    batch = ranked_batch("ranked", [alice], items=2)
    queued = RewardModelRun.objects.create()
    with pytest.raises(RewardRunError, match="no trained model"):
        start_reward_run(charlie, [batch], base_run=queued, dispatch=False)
    done = RewardModelRun.objects.create(
        status=RunStatus.SUCCEEDED, artifact_path=tiny_backbone, config={"backbone": tiny_backbone}
    )
    with pytest.raises(RewardRunError, match="was trained on backbone"):
        start_reward_run(charlie, [batch], base_run=done, backbone="/somewhere/else", dispatch=False)


# Every way in ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_and_the_form_take_pairs_per_ranking_borda_and_a_base_run(alice, charlie, tiny_backbone, client):
    batch = ranked_batch("ranked", [alice], items=2)
    base = RewardModelRun.objects.create(
        status=RunStatus.SUCCEEDED, artifact_path=tiny_backbone, config={"backbone": tiny_backbone}
    )
    api = APIClient()
    api.force_authenticate(charlie)
    body = {
        "batches": [batch.pk],
        "ranking_aggregate": "borda",
        "base_run": base.pk,
        "options": {"pairs_per_ranking": 2},
    }
    response = api.post("/api/reward-runs/", body, format="json")
    assert response.status_code == 201, response.content
    run = RewardModelRun.objects.get(pk=response.json()["id"])
    assert response.json()["base_run"] == base.pk
    assert (run.config["pairs_per_ranking"], run.config["ranking_aggregate"], run.base_run) == (2, "borda", base)
    refused = api.post("/api/reward-runs/", {**body, "options": {"pairs_per_ranking": 37}}, format="json")
    assert refused.status_code == 400 and "pairs_per_ranking" in refused.content.decode()

    client.force_login(charlie)
    form = client.get(reverse("rewardmodel:run_new")).content.decode()
    assert 'name="pairs_per_ranking"' in form and 'name="ranking_aggregate"' in form and 'name="base_run"' in form
    posted = client.post(
        reverse("rewardmodel:run_new"),
        {
            "batches": [batch.pk],
            "aggregate": "each",
            "ranking_aggregate": "borda",
            "base_run": base.pk,
            "pairs_per_ranking": 4,
            "queue": "",
        },
    )
    assert posted.status_code == 302, posted.content.decode()[:2000]
    started = RewardModelRun.objects.latest("pk")
    assert (started.config["pairs_per_ranking"], started.base_run) == (4, base)


def test_the_command_takes_the_ranking_options():
    from rewardmodel.management.commands.train_reward_model import Command

    parser = Command().create_parser("manage.py", "train_reward_model")
    options = parser.parse_args(
        ["--batch", "b", "--pairs-per-ranking", "3", "--ranking-aggregate", "borda", "--base-run", "7"]
    )
    assert (options.pairs_per_ranking, options.ranking_aggregate, options.base_run) == (3, "borda", 7)


class FirstTokenReward(torch.nn.Module):
    """A stand-in reward model whose reward is the first token id: orders are known by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # score_sequences finds the device through a parameter

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=input_ids[:, :1].float())


def test_kendall_tau_is_the_mean_over_held_out_rankings_of_model_order_against_people_order():
    encoded_rankings = EncodedRankings(
        # rewards 3, 1, 2 | 1, 2, 3 | 5, 5, 1, 4
        sequences=[[3], [1], [2], [1], [2], [3], [5], [5], [1], [4]],
        sizes=[3, 3, 4],
        tiers=[
            [[1], [3], [2]],  # people agree with the model: tau 1
            [[1], [2], [3]],  # exactly reversed: tau -1
            [[1], [2], [4], [3]],  # model ties 1 and 2: tau-b = (5 - 0) / sqrt(5 * 6)
        ],
    )
    metrics = evaluate_rankings(FirstTokenReward(), encoded_rankings, pad_token_id=0, batch_size=4, bf16=False)
    assert metrics["eval_rankings"] == 3
    assert metrics["eval_kendall_tau"] == pytest.approx((1 - 1 + 5 / math.sqrt(30)) / 3)
