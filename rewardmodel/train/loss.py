"""The pairwise (Bradley-Terry) reward-model loss of the lecture, with Llama 2's optional margin."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_loss(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    weight_total: float | None = None,
) -> torch.Tensor:
    """-log σ(r_chosen − r_rejected − m), averaged with `weight` (1/C(K,2) for the pairs of a K-way ranking).

    The weighted mean is Σ w·l / Σ w, so a prompt ranked K ways weighs as much as a prompt with one pair.
    `weight_total` replaces Σ w when these pairs are one process's share of a batch: Σ w of the whole batch, so the
    shares' losses add up to the batch's.
    """
    difference = r_chosen - r_rejected
    if margin is not None:
        difference = difference - margin
    losses = -F.logsigmoid(difference)
    if weight is None:
        return losses.mean()
    return (losses * weight).sum() / (weight.sum() if weight_total is None else weight_total)
