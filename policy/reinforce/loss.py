"""The lecture's REINFORCE objective, its baselines and the KL estimators (pure tensor functions)."""

from __future__ import annotations

import torch


def compute_baseline(rewards: torch.Tensor, samples_per_prompt: int, kind: str) -> torch.Tensor:
    """b_i for each sample; rewards are grouped prompt by prompt, samples_per_prompt consecutive entries each."""
    rewards = rewards.detach()
    if kind == "none":
        return torch.zeros_like(rewards)
    if kind == "mean":
        return rewards.mean().expand_as(rewards).clone()
    if kind == "loo":
        n = samples_per_prompt
        if n < 2:
            raise ValueError("leave-one-out baseline needs samples_per_prompt >= 2")
        grouped = _grouped(rewards, n)
        # Mean of the other n-1 samples of the same prompt: unbiased, as the sample's own reward is left out.
        others = (grouped.sum(dim=1, keepdim=True) - grouped) / (n - 1)
        return others.reshape(-1)
    raise ValueError(f"unknown baseline {kind!r}: use none, mean or loo")


def reinforce_loss(
    logprobs: torch.Tensor,
    response_mask: torch.Tensor,
    rewards: torch.Tensor,
    baseline: torch.Tensor,
    samples_per_prompt: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """-(1/n) sum_i (R_i - b_i) sum_j log p(x_ij | prompt, x_i,<j), averaged over the prompts of the batch.

    logprobs: [B, T] log-probabilities of the sampled tokens; response_mask: [B, T], true only on generated tokens
    (prompt and padding excluded); rewards, baseline: [B]. B = prompts x samples_per_prompt.
    """
    if logprobs.shape != response_mask.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)} and response_mask {tuple(response_mask.shape)} differ")
    batch = logprobs.shape[0]
    if rewards.shape != (batch,) or baseline.shape != (batch,):
        raise ValueError(f"rewards and baseline must have shape ({batch},)")
    _grouped(rewards, samples_per_prompt)  # validates the grouping
    mask = response_mask.to(logprobs.dtype)
    sequence_logprob = (logprobs * mask).sum(dim=1)
    advantage = (rewards - baseline).detach().to(logprobs.dtype)
    # Summing over all B samples and dividing by n gives the lecture's per-prompt objective; dividing again by the
    # number of prompts keeps the step size independent of prompts_per_step.
    num_prompts = batch // samples_per_prompt
    loss = -(advantage * sequence_logprob).sum() / samples_per_prompt / num_prompts
    stats = {
        "advantage_mean": advantage.mean().item(),
        "advantage_std": advantage.std().item() if batch > 1 else 0.0,
        "sequence_logprob": sequence_logprob.detach().mean().item(),
    }
    return loss, stats


def token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """k1 estimate per token, log p - log p_ref on the sampled tokens; zero outside the response."""
    return (logprobs - ref_logprobs) * response_mask.to(logprobs.dtype)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """k3 estimate per token, exp(r) - r - 1 with r = log p_ref - log p: non-negative, low variance, differentiable."""
    log_ratio = (ref_logprobs - logprobs).clamp(-20.0, 20.0)
    return (log_ratio.exp() - log_ratio - 1.0) * response_mask.to(logprobs.dtype)


def whiten(values: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    if values.numel() < 2:
        return values - values.mean()
    return (values - values.mean()) / (values.std() + eps)


def _grouped(rewards: torch.Tensor, samples_per_prompt: int) -> torch.Tensor:
    if samples_per_prompt < 1 or rewards.shape[0] % samples_per_prompt:
        raise ValueError(f"batch of {rewards.shape[0]} is not a whole number of groups of {samples_per_prompt}")
    return rewards.reshape(-1, samples_per_prompt)
