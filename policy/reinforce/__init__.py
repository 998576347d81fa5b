"""Policy training without Django: REINFORCE against a reward function, SFT warm start, sampling, the default policy.

Takes plain data (prompts as lists of {role, content} messages) and callbacks (on_log, on_samples, should_stop).
"""

from .config import ReinforceConfig, SFTConfig
from .loading import DEFAULT_POLICY_GGUF, default_policy_path, load_policy
from .loss import compute_baseline, reinforce_loss
from .sampling import generate_responses
from .sft import sft_label_mask, train_sft
from .train import RewardFn, TrainingStopped, train_reinforce

__all__ = [
    "DEFAULT_POLICY_GGUF",
    "ReinforceConfig",
    "RewardFn",
    "SFTConfig",
    "TrainingStopped",
    "compute_baseline",
    "default_policy_path",
    "generate_responses",
    "load_policy",
    "reinforce_loss",
    "sft_label_mask",
    "train_reinforce",
    "train_sft",
]
