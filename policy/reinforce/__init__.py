"""Policy training without Django: REINFORCE against a reward function, SFT warm start, DPO / IPO on preference
pairs, sampling, the default policy.

Takes plain data (prompts as lists of {role, content} messages) and callbacks (on_log, on_samples, should_stop).
The configs import without torch; everything else loads torch and transformers on first use (PEP 562), so a web
process that only shows forms and pages never pays for them.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from rlhf.training import TrainingStopped

from .config import DPOConfig, ReinforceConfig, SFTConfig

_LAZY = {
    "DEFAULT_POLICY_GGUF": ".loading",
    "default_policy_path": ".loading",
    "load_policy": ".loading",
    "compute_baseline": ".loss",
    "dpo_loss": ".dpo",
    "train_dpo": ".dpo",
    "reinforce_loss": ".loss",
    "generate_responses": ".sampling",
    "sft_label_mask": ".sft",
    "train_sft": ".sft",
    "RewardFn": ".train",
    "train_reinforce": ".train",
}

if TYPE_CHECKING:
    from .dpo import dpo_loss, train_dpo
    from .loading import DEFAULT_POLICY_GGUF, default_policy_path, load_policy
    from .loss import compute_baseline, reinforce_loss
    from .sampling import generate_responses
    from .sft import sft_label_mask, train_sft
    from .train import RewardFn, train_reinforce


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_POLICY_GGUF",
    "DPOConfig",
    "ReinforceConfig",
    "RewardFn",
    "SFTConfig",
    "TrainingStopped",
    "compute_baseline",
    "default_policy_path",
    "dpo_loss",
    "generate_responses",
    "load_policy",
    "reinforce_loss",
    "sft_label_mask",
    "train_dpo",
    "train_reinforce",
    "train_sft",
]
