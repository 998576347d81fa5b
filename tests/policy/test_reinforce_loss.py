"""The lecture's REINFORCE objective on hand-computed tensors: each baseline, masking, KL estimators."""

import pytest
import torch

from policy.reinforce import compute_baseline, reinforce_loss
from policy.reinforce.loss import k3_kl, token_kl

# Two prompts x two samples. Masked positions hold values that would change the answer if they leaked in.
LOGPROBS = [[-1.0, -2.0, -9.0], [-0.5, -0.5, -1.0], [-4.0, -7.0, -7.0], [-1.0, -1.0, -5.0]]
MASK = [[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]]  # sequence log-probs: -3, -2, -4, -2
REWARDS = [1.0, 3.0, 2.0, 2.0]


def _loss(baseline_kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    logprobs = torch.tensor(LOGPROBS, requires_grad=True)
    rewards = torch.tensor(REWARDS)
    baseline = compute_baseline(rewards, 2, baseline_kind)
    loss, _ = reinforce_loss(logprobs, torch.tensor(MASK, dtype=torch.bool), rewards, baseline, samples_per_prompt=2)
    loss.backward()
    return loss, logprobs.grad


@pytest.mark.parametrize(
    ("kind", "expected_baseline", "expected_loss"),
    [
        # -(1/n)(1/prompts) sum_i (R_i - b_i) logp_i = -(1*-3 + 3*-2 + 2*-4 + 2*-2) / 2 / 2
        ("none", [0.0, 0.0, 0.0, 0.0], 5.25),
        # batch mean b = 2: -((-1)(-3) + (1)(-2)) / 4
        ("mean", [2.0, 2.0, 2.0, 2.0], -0.25),
        # leave-one-out within each prompt: b = the other sample's reward
        ("loo", [3.0, 1.0, 2.0, 2.0], -0.5),
    ],
)
def test_loss_for_each_baseline_matches_hand_computation(kind, expected_baseline, expected_loss):
    assert compute_baseline(torch.tensor(REWARDS), 2, kind).tolist() == expected_baseline
    loss, _ = _loss(kind)
    assert loss.item() == pytest.approx(expected_loss)


def test_leave_one_out_baseline_averages_the_other_samples_of_the_same_prompt():
    rewards = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])
    assert compute_baseline(rewards, 3, "loo").tolist() == [4.0, 3.5, 1.5, 1.5, 1.5, 0.0]


def test_prompt_and_padding_positions_get_no_gradient():
    _, grad = _loss("none")
    mask = torch.tensor(MASK, dtype=torch.bool)
    assert torch.all(grad[~mask] == 0)
    # Every generated token of sample i gets -(R_i - b_i) / n / prompts.
    expected = -torch.tensor(REWARDS)[:, None].expand(4, 3) / 4
    assert torch.allclose(grad[mask], expected[mask])


def test_bad_groupings_and_unknown_baselines_are_refused():
    with pytest.raises(ValueError, match="not a whole number of groups"):
        reinforce_loss(torch.zeros(3, 2), torch.ones(3, 2), torch.zeros(3), torch.zeros(3), samples_per_prompt=2)
    with pytest.raises(ValueError, match="samples_per_prompt >= 2"):
        compute_baseline(torch.zeros(4), 1, "loo")
    with pytest.raises(ValueError, match="unknown baseline"):
        compute_baseline(torch.zeros(4), 2, "median")


def test_kl_estimators_are_zero_for_identical_policies_and_ignore_padding():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert token_kl(logprobs, logprobs, mask).abs().sum() == 0
    assert k3_kl(logprobs, logprobs, mask).abs().sum() == 0
    ref = torch.tensor([[-1.5, -1.0, -30.0]])
    assert token_kl(logprobs, ref, mask)[0].tolist() == pytest.approx([0.5, -1.0, 0.0])
    assert torch.all(k3_kl(logprobs, ref, mask)[:, :2] > 0)
    assert k3_kl(logprobs, ref, mask)[0, 2] == 0


def test_the_reported_kl_is_k3_summed_over_the_answer_never_negative():
    """k3 per token: exp(r) - 1 - r with r = log p_ref - log p; by hand for r = -0.5 and r = 1.0 (e^-0.5 = 0.60653,
    e^1 = 2.71828): 0.10653 + 0.71828 = 0.82481 for the answer, where k1 (log p - log p_ref) would say -0.5."""
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]])
    ref = torch.tensor([[-1.5, -1.0, -9.0]])
    mask = torch.tensor([[1, 1, 0]], dtype=torch.bool)
    assert token_kl(logprobs, ref, mask).sum().item() == pytest.approx(-0.5)
    assert k3_kl(logprobs, ref, mask).sum(dim=1).tolist() == pytest.approx([0.82481], abs=1e-4)
    noisy = torch.randn(64, 5)
    assert torch.all(k3_kl(noisy, noisy + torch.randn(64, 5), torch.ones(64, 5, dtype=torch.bool)) >= 0)
