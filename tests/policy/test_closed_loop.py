"""The closed loop with tiny models: people rank K answers, a reward model learns from the rankings, REINFORCE trains a
policy on it, the policy's answers go back to people as a ranking batch, and the next reward model (and policy)
start from the previous ones. Every run succeeds and every link is stored."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from annotate.models import Batch, Item, Judgment
from annotate.services import assign_hit, rank_item, submit_hit
from policy.errors import PolicyRunError
from policy.evaluation import ranked_win_rate, send_to_annotators
from policy.lineage import lineage_of
from policy.management.commands.train_policy import Command as TrainPolicyCommand
from policy.models import PolicyRun
from policy.services import run_policy_training, start_policy_run
from rewardmodel.services import run_reward_training, start_reward_run
from rlhf.rankings import ranks_of
from runs.models import RunStatus
from tests.policy.helpers import TINY_REINFORCE, prompts_batch, succeeded_reward_run
from tests.rewardmodel.helpers import COLORS, build_tiny_backbone

TINY_REWARD = {"epochs": 2, "batch_size": 4, "eval_fraction": 0.25, "log_every": 1, "learning_rate": 1e-3}
# Ten prompts in the tiny policy's words: two are held out, so the ranking batch has two items.
LOOP_PROMPTS = ["hi", "hello", "a b", "c d", "e a", "hi ok", "sure hello", "b e", "ok a", "d c"]
QUALITY = ("good", "fine", "poor", "bad")  # best first: how the simulated people rank the answers


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.ARTIFACTS_DIR


@pytest.fixture
def tiny_backbone(tmp_path) -> str:
    return build_tiny_backbone(tmp_path / "backbone")


def ranking_batch(name: str, items: int = 8) -> Batch:
    """K = 4 answers per prompt, one per word of QUALITY, in a different order per item."""
    batch = Batch.objects.create(name=name, kind=Batch.Kind.RANKING, ranking_size=4, samples_per_hit=4)
    for n in range(items):
        color = COLORS[n % len(COLORS)]
        words = QUALITY[n % 4 :] + QUALITY[: n % 4]
        answers = [f"the {color} answer is {word} ." for word in words]
        Item.objects.create(
            batch=batch,
            external_id=str(n),
            prompt=[{"role": "user", "content": f"tell me about the {color} cat ?"}],
            response_1=answers[0],
            response_2=answers[1],
            more_responses=answers[2:],
        )
    return batch


def quality_order(item: Item) -> list[int]:
    """The item's response numbers best first, as the simulated annotators see it."""

    def badness(number: int) -> int:
        text = item.response(number)
        return next((i for i, word in enumerate(QUALITY) if f" {word} " in text), len(QUALITY))

    return sorted(range(1, item.response_count + 1), key=lambda number: (badness(number), number))


def rank_everything(user, order_of) -> int:
    """Do every HIT the user gets: rank each sample by `order_of(item)` (item response numbers, best first), typed
    as the screen shows them (letters in the shuffled display order). Returns the rankings made."""
    ranked = 0
    while (hit := assign_hit(user)) is not None:
        for slot in hit.ordered_slots():
            screen = slot.to_screen_tiers([[number] for number in order_of(slot.item)])
            assert rank_item(hit, slot.position, screen, elapsed_ms=2000) is not None
            ranked += 1
        submit_hit(hit)
    return ranked


def test_rankings_train_a_reward_model_whose_policy_is_ranked_again_and_trains_the_next(
    alice, bob, charlie, artifacts, tiny_backbone, tiny_policy
):
    # 1. People rank K = 4 answers per prompt (two annotators each, through the HIT services).
    judgments = ranking_batch("ranked-v1")
    judgments.overlap = 2
    judgments.save()
    assert rank_everything(alice, quality_order) == 8
    assert rank_everything(bob, quality_order) == 8
    stored = Judgment.objects.filter(item__batch=judgments)
    assert stored.count() == 16
    for judgment in stored:
        assert [tier[0] for tier in judgment.ranking] == quality_order(judgment.item), "stored in the item's order"

    # 2. Reward model v1 on the rankings (Borda per item), with two pairs drawn per ranking each epoch.
    reward_v1 = start_reward_run(
        charlie,
        [judgments],
        ranking_aggregate="borda",
        backbone=tiny_backbone,
        pairs_per_ranking=2,
        dispatch=False,
        **TINY_REWARD,
    )
    reward_v1 = run_reward_training(reward_v1)
    assert reward_v1.status == RunStatus.SUCCEEDED, reward_v1.error
    assert reward_v1.pairs_count == 8 * 6, "Borda: one ranking per item, all C(4,2) pairs (the trainer draws 2)"
    assert reward_v1.metrics["eval_ranking_pairs"] > 0 and reward_v1.metrics["eval_pairwise_pairs"] == 0
    assert reward_v1.metrics["eval_rankings"] > 0
    assert -1.0 <= reward_v1.metrics["eval_kendall_tau"] <= 1.0

    # 3. REINFORCE against it (its prompts are a batch nobody is asked to judge).
    prompts = prompts_batch("prompts", LOOP_PROMPTS)
    Batch.objects.filter(pk=prompts.pk).update(active=False)
    policy_v1 = start_policy_run(
        charlie,
        "reinforce",
        reward_run=reward_v1,
        base_path=tiny_policy,
        data_batch=prompts,
        dispatch=False,
        **TINY_REINFORCE,
    )
    policy_v1 = run_policy_training(policy_v1)
    assert policy_v1.status == RunStatus.SUCCEEDED, policy_v1.error
    n = TINY_REINFORCE["samples_per_prompt"]
    assert all(len(sample["policy_responses"]) == n for sample in policy_v1.eval_samples)

    # 4. Its n answers and the reference's go back to people as one K = n + 1 ranking item per held-out prompt.
    ranked_samples = send_to_annotators(policy_v1, charlie, kind="ranking", overlap=2)
    policy_v1.refresh_from_db()
    assert policy_v1.ranking_batch == ranked_samples and policy_v1.annotation_batch is None
    assert ranked_samples.is_ranking and ranked_samples.ranking_size == n + 1
    items = list(ranked_samples.items.order_by("pk"))
    assert len(items) == len(policy_v1.eval_samples) == 2
    for item, sample in zip(items, policy_v1.eval_samples, strict=True):
        assert item.response_count == n + 1
        assert item.response(item.source["reference_response"]) == sample["reference_response"]
        assert sorted(item.response(k) for k in item.source["policy_responses"]) == sorted(sample["policy_responses"])
    assert send_to_annotators(policy_v1, charlie, kind="ranking") == ranked_samples, "sending twice: same batch"

    def reference_last(item: Item) -> list[int]:
        return [*item.source["policy_responses"], item.source["reference_response"]]

    assert rank_everything(alice, reference_last) == 2
    assert rank_everything(bob, reference_last) == 2
    win_rate = ranked_win_rate(policy_v1)
    assert (win_rate.wins, win_rate.n, win_rate.rate) == (2 * 2 * n, 2 * 2 * n, 1.0)
    for judgment in Judgment.objects.filter(item__batch=ranked_samples):
        ranks = ranks_of(judgment.ranking)
        assert max(ranks.values()) == ranks[judgment.item.source["reference_response"]]

    # 5. Reward model v2 starts from v1's weights and trains on the old and the new rankings together.
    reward_v2 = start_reward_run(
        charlie, [judgments, ranked_samples], base_run=reward_v1, dispatch=False, **TINY_REWARD
    )
    reward_v2 = run_reward_training(reward_v2)
    assert reward_v2.status == RunStatus.SUCCEEDED, reward_v2.error
    assert reward_v2.base_run == reward_v1
    assert reward_v2.pairs_count == 16 * 6 + 4 * 3, "each: one ranking per judgment"

    # 6. Policy v2 starts from a checkpoint of policy v1, against reward model v2.
    assert policy_v1.checkpoint_names() == ["final", "checkpoint-1"]
    with pytest.raises(PolicyRunError, match="has no checkpoint 'checkpoint-9'"):
        start_policy_run(
            charlie,
            "reinforce",
            reward_run=reward_v2,
            base_run=policy_v1,
            base_checkpoint="checkpoint-9",
            data_batch=prompts,
            dispatch=False,
        )
    policy_v2 = start_policy_run(
        charlie,
        "reinforce",
        reward_run=reward_v2,
        base_run=policy_v1,
        base_checkpoint="checkpoint-1",
        data_batch=prompts,
        dispatch=False,
        **TINY_REINFORCE,
    )
    policy_v2 = run_policy_training(policy_v2)
    assert policy_v2.status == RunStatus.SUCCEEDED, policy_v2.error
    assert (policy_v2.base_run, policy_v2.base_checkpoint) == (policy_v1, "checkpoint-1")
    assert json.loads((policy_v2.model_dir / "training_state.json").read_text())["policy_path"].endswith("checkpoint-1")

    # The lineage is the chain judgments → RM v1 → policy v1 → ranked samples → RM v2 → policy v2.
    chain = [step.obj for step in lineage_of(policy_v2)]
    assert chain == [judgments, reward_v1, policy_v1, ranked_samples, reward_v2, policy_v2]
    assert [step.obj for step in lineage_of(judgments)] == chain, "seen from its start, the same chain"
    figures = {step.obj: dict(step.figures) for step in lineage_of(reward_v1)}
    assert figures[reward_v1]["accuracy"] != "–"
    assert "Kendall's τ" in figures[reward_v1]
    assert figures[policy_v1]["ranked above reference"] == f"1.00 (n = {2 * 2 * n}; 95 % 0.68–1.00)"
    assert figures[ranked_samples]["rankings now"] == "4"


def test_the_api_form_and_command_take_a_base_checkpoint(charlie, charlie_client, tmp_path, tiny_policy):
    folder = tmp_path / "policy-earlier"
    for name in ("final", "checkpoint-3"):
        (folder / name).mkdir(parents=True)
    earlier = PolicyRun.objects.create(status=RunStatus.SUCCEEDED, artifact_path=str(folder))
    reward = succeeded_reward_run(tmp_path / "reward")
    prompts = prompts_batch("prompts", LOOP_PROMPTS)
    api = APIClient()
    api.force_authenticate(charlie)
    body = {"kind": "reinforce", "reward_run": reward.pk, "base_run": earlier.pk, "data_batch": prompts.pk}
    refused = api.post("/api/policy-runs/", {**body, "base_checkpoint": "checkpoint-9"}, format="json")
    assert refused.status_code == 400 and "saved: final, checkpoint-3" in refused.content.decode()
    started = api.post("/api/policy-runs/", {**body, "base_checkpoint": "checkpoint-3"}, format="json")
    assert started.status_code == 201, started.content
    assert started.json()["base_checkpoint"] == "checkpoint-3"

    form = charlie_client.get("/dashboard/policy/new/").content.decode()
    assert 'name="base_checkpoint"' in form
    parser = TrainPolicyCommand().create_parser("manage.py", "train_policy")
    options = parser.parse_args(
        ["--reward-run", "1", "--prompts-batch", "p", "--base-run", "2", "--base-checkpoint", "checkpoint-3"]
    )
    assert (options.base_run, options.base_checkpoint) == (2, "checkpoint-3")
