"""Sending a trained policy's held-out answers to annotators, and the human win rate they produce."""

from __future__ import annotations

import pytest

from annotate.models import Item
from annotate.services import assign_hit, rate_item, submit_hit
from policy.errors import PolicyRunError
from policy.evaluation import human_win_rate, send_to_annotators
from policy.services import run_policy_training, start_policy_run
from rlhf.stats import wilson_interval
from runs.models import RunStatus
from tests.annotate.factories import make_batch
from tests.policy.helpers import TINY_REINFORCE, finished_run_with_answers, prompts_batch, succeeded_reward_run


@pytest.fixture
def reward_run(db, tmp_path):
    return succeeded_reward_run(tmp_path / "reward")


def judge_everything(user, prefer_policy: bool) -> int:
    """Do every HIT the user is given, always picking the policy (or always the reference). Returns judgments."""
    judged = 0
    while (hit := assign_hit(user)) is not None:
        for slot in hit.ordered_slots():
            policy_side = slot.item.source["policy_response"]
            wanted_item_side = policy_side if prefer_policy else 3 - policy_side
            # The screen may show the item's responses swapped; click the side where the wanted one is shown.
            screen_side = (3 - wanted_item_side) if slot.swapped else wanted_item_side
            rate_item(hit, slot.position, -2 if screen_side == 1 else 2, elapsed_ms=1000)
            judged += 1
        submit_hit(hit)
    return judged


def test_a_trained_runs_answers_become_a_batch_of_policy_vs_reference(charlie, reward_run, tiny_policy, tmp_path):
    run = start_policy_run(
        charlie,
        "reinforce",
        reward_run=reward_run,
        base_path=tiny_policy,
        data_batch=prompts_batch(),
        dispatch=False,
        **TINY_REINFORCE,
    )
    run = run_policy_training(run)
    assert run.status == RunStatus.SUCCEEDED, run.error

    batch = send_to_annotators(run, charlie)

    run.refresh_from_db()
    assert run.annotation_batch == batch
    items = list(batch.items.order_by("pk"))
    assert len(items) == len(run.eval_samples) == run.config["eval_prompts"]
    for item, sample in zip(items, run.eval_samples, strict=True):
        assert item.prompt == sample["prompt"]
        policy_side = item.source["policy_response"]
        assert item.response(policy_side) == sample["policy_response"]
        assert item.response(3 - policy_side) == sample["reference_response"]
        assert item.source["reference_response"] == 3 - policy_side


def test_policy_position_is_randomised_and_recorded(charlie, reward_run):
    run = finished_run_with_answers(reward_run, answers=40)
    batch = send_to_annotators(run, charlie)
    sides = [item.source["policy_response"] for item in batch.items.all()]
    assert set(sides) == {1, 2}
    assert 8 <= sides.count(1) <= 32
    for item in batch.items.all():
        assert item.response(item.source["policy_response"]).startswith("policy answer")


def test_sending_twice_returns_the_same_batch(charlie, reward_run):
    run = finished_run_with_answers(reward_run)
    first = send_to_annotators(run, charlie)
    again = send_to_annotators(run, charlie)
    assert again == first
    assert Item.objects.filter(batch__name__startswith=f"policy-{run.pk}-").count() == 4


def test_unfinished_run_cannot_be_sent(charlie, reward_run):
    run = finished_run_with_answers(reward_run)
    run.status = RunStatus.RUNNING
    run.save()
    with pytest.raises(PolicyRunError, match="succeeded"):
        send_to_annotators(run, charlie)


def test_human_win_rate_follows_alice_and_bobs_judgments(alice, bob, charlie, reward_run):
    run = finished_run_with_answers(reward_run, answers=4)
    assert human_win_rate(run).n == 0
    send_to_annotators(run, charlie, overlap=2)
    assert human_win_rate(run) == (0, 0, None, None, None)

    assert judge_everything(alice, prefer_policy=True) == 4
    after_alice = human_win_rate(run)
    assert (after_alice.wins, after_alice.n, after_alice.rate) == (4, 4, 1.0)

    assert judge_everything(bob, prefer_policy=False) == 4
    wins, n, rate, low, high = human_win_rate(run)
    assert (wins, n, rate) == (4, 8, 0.5)
    assert low == pytest.approx(0.2152, abs=1e-3)
    assert high == pytest.approx(0.7848, abs=1e-3)


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(8, 10)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-3), pytest.approx(0.9433, abs=1e-3))
    assert wilson_interval(0, 5)[0] == 0.0
    assert wilson_interval(5, 5)[1] == pytest.approx(1.0)


def test_a_sent_batch_goes_to_the_front_of_the_queue(alice, charlie, reward_run):
    older = make_batch("older", priority=5)
    make_batch("paused", priority=50, active=False)  # paused batches do not count
    run = finished_run_with_answers(reward_run)

    batch = send_to_annotators(run, charlie)

    assert batch.priority == 6
    assert assign_hit(alice).batch == batch, "annotators get the policy's answers before the older batch"
    assert older.active


def test_send_to_annotators_can_keep_a_chosen_priority(alice, charlie, reward_run):
    make_batch("older", priority=5)
    run = finished_run_with_answers(reward_run)

    batch = send_to_annotators(run, charlie, priority=0)

    assert batch.priority == 0
    assert assign_hit(alice).batch.name == "older"
