"""Reward-model training, free of Django: plain preference pairs in, a Hugging Face model directory out.

The lecture's objective: for human-ranked responses, -log σ(r(x, y_w) − r(x, y_l)), each of a prompt's C(K,2)
pairs weighted 1/C(K,2).
"""

from rewardmodel.train.backbone import DEFAULT_BACKBONE
from rewardmodel.train.data import PreferencePair, pairs_from_ranking, split_by_group
from rewardmodel.train.loss import pairwise_loss
from rewardmodel.train.scoring import RewardScorer, evaluate_pairs, load_reward_model
from rewardmodel.train.trainer import RewardTrainConfig, TrainingStopped, train_reward_model

__all__ = [
    "DEFAULT_BACKBONE",
    "PreferencePair",
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
