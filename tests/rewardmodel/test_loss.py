"""The pairwise reward loss on hand-computed values: plain, with Llama-2 margins, and with K-way weights."""

import math

import pytest
import torch

from rewardmodel.train import pairs_from_ranking, pairwise_loss


def neg_log_sigmoid(x: float) -> float:
    return math.log(1 + math.exp(-x))


def test_equal_rewards_cost_log_two():
    loss = pairwise_loss(torch.tensor([0.7]), torch.tensor([0.7]))
    assert loss.item() == pytest.approx(math.log(2))


def test_loss_is_the_mean_of_minus_log_sigmoid_of_the_difference():
    loss = pairwise_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0]))
    # -log σ(2) = 0.126928, -log σ(-1) = 1.313262
    assert loss.item() == pytest.approx((0.126928 + 1.313262) / 2, abs=1e-6)


def test_margin_is_subtracted_from_the_difference():
    plain = pairwise_loss(torch.tensor([2.0]), torch.tensor([0.0]))
    with_margin = pairwise_loss(torch.tensor([2.0]), torch.tensor([0.0]), margin=torch.tensor([1.0]))
    assert with_margin.item() == pytest.approx(0.313262, abs=1e-6)  # -log σ(2 - 1)
    assert with_margin.item() > plain.item()  # a "clearly better" pair must win by more


def test_per_pair_margins_follow_their_levels():
    # a clear pair (m=1) and a slight pair (m=0) with the same reward gap of 0.5
    loss = pairwise_loss(torch.tensor([0.5, 0.5]), torch.tensor([0.0, 0.0]), margin=torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx((neg_log_sigmoid(-0.5) + neg_log_sigmoid(0.5)) / 2, abs=1e-6)


def test_k_way_ranking_gives_all_pairs_weighted_one_over_k_choose_2():
    prompt = [{"role": "user", "content": "Rank these"}]
    pairs = pairs_from_ranking(prompt, ["best", "middle", "worst"], group="g1", level="clear")
    assert [(p.chosen, p.rejected) for p in pairs] == [("best", "middle"), ("best", "worst"), ("middle", "worst")]
    assert [p.weight for p in pairs] == pytest.approx([1 / 3] * 3)
    assert {p.group for p in pairs} == {"g1"}
    assert len(pairs_from_ranking(prompt, list("abcd"))) == 6


def test_ranking_of_one_response_is_refused():
    with pytest.raises(ValueError, match="at least 2 responses"):
        pairs_from_ranking([{"role": "user", "content": "x"}], ["only"])


def test_weights_make_a_ranked_prompt_count_as_much_as_a_single_pair():
    # three pairs of one 3-way ranking (weight 1/3 each) beside one ordinary pair (weight 1)
    r_chosen = torch.tensor([1.0, 2.0, 0.0, -1.0])
    r_rejected = torch.tensor([0.0, 0.0, 0.0, 0.0])
    weight = torch.tensor([1 / 3, 1 / 3, 1 / 3, 1.0])
    expected = ((neg_log_sigmoid(1.0) + neg_log_sigmoid(2.0) + neg_log_sigmoid(0.0)) / 3 + neg_log_sigmoid(-1.0)) / 2
    assert pairwise_loss(r_chosen, r_rejected, weight=weight).item() == pytest.approx(expected, abs=1e-6)
    unweighted = pairwise_loss(r_chosen, r_rejected).item()
    assert unweighted != pytest.approx(expected, abs=1e-3)


def test_loss_has_gradients_that_push_chosen_up_and_rejected_down():
    r_chosen = torch.tensor([0.0], requires_grad=True)
    r_rejected = torch.tensor([0.0], requires_grad=True)
    pairwise_loss(r_chosen, r_rejected).backward()
    assert r_chosen.grad.item() == pytest.approx(-0.5)
    assert r_rejected.grad.item() == pytest.approx(0.5)
