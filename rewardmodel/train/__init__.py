"""Reward-model training, free of Django: plain preference pairs in, a Hugging Face model directory out.

The lecture's objective: for human-ranked responses, -log σ(r(x, y_w) − r(x, y_l)), each of a prompt's C(K,2)
pairs weighted 1/C(K,2).

The configuration and the pair type import without torch; the training and scoring names load torch and
transformers on first use (PEP 562), so a web process that only shows forms and pages never pays for them.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from rewardmodel.train.config import DEFAULT_BACKBONE, RewardTrainConfig
from rewardmodel.train.data import PreferencePair, RankedResponses, pairs_from_ranking, split_by_group
from rlhf.training import TrainingStopped

_LAZY = {
    "pairwise_loss": "rewardmodel.train.loss",
    "RewardScorer": "rewardmodel.train.scoring",
    "evaluate_pairs": "rewardmodel.train.scoring",
    "load_reward_model": "rewardmodel.train.scoring",
    "train_reward_model": "rewardmodel.train.trainer",
}

if TYPE_CHECKING:
    from rewardmodel.train.loss import pairwise_loss
    from rewardmodel.train.scoring import RewardScorer, evaluate_pairs, load_reward_model
    from rewardmodel.train.trainer import train_reward_model


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_BACKBONE",
    "PreferencePair",
    "RankedResponses",
    "RewardScorer",
    "RewardTrainConfig",
    "TrainingStopped",
    "evaluate_pairs",
    "load_reward_model",
    "pairs_from_ranking",
    "pairwise_loss",
    "split_by_group",
    "train_reward_model",
]
