"""Training configurations (nanoGPT style: one dataclass per run kind, defaults that finish in minutes on a CPU).

A default REINFORCE iteration (8 samples, <=128 prompt + 32 new tokens, 135M policy) is about a minute on a busy
2-core CPU, mostly prefill and the backward pass (docs/benchmarks.md); raise steps and lengths on a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rewardmodel.train.config import require_positive_ints


class TrainingStopped(Exception):
    """should_stop() asked the run to end; nothing after the last checkpoint is saved."""


@dataclass
class ReinforceConfig:
    steps: int = 10
    prompts_per_step: int = 2
    samples_per_prompt: int = 4  # n in the lecture's objective
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 32
    max_prompt_tokens: int = 128  # longer prompts keep their end (the latest turns)
    learning_rate: float = 1e-5
    kl_coef: float = 0.05  # beta
    kl_mode: str = "reward"  # "reward": per-token penalty summed into R; "loss": k3 estimator added to the loss
    baseline: str = "loo"  # "none" (the lecture's plain form), "mean" (batch mean), "loo" (leave-one-out per prompt)
    whiten_rewards: bool = False
    no_eos_penalty: float | None = None  # subtracted from the score of a response that never ends
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    eval_every: int = 5
    eval_max_prompts: int = 8
    checkpoint_every: int = 5  # steps between saved checkpoint-<step> folders and resumable checkpoints
    seed: int = 0
    log_every: int = 1

    def __post_init__(self) -> None:
        require_positive_ints(
            self,
            (
                "steps",
                "prompts_per_step",
                "samples_per_prompt",
                "max_new_tokens",
                "max_prompt_tokens",
                "eval_every",
                "checkpoint_every",
                "log_every",
                "eval_max_prompts",
            ),
        )
        if self.baseline not in ("none", "mean", "loo"):
            raise ValueError(f"baseline must be one of none, mean, loo; got {self.baseline!r}")
        if self.baseline == "loo" and self.samples_per_prompt < 2:
            raise ValueError("baseline 'loo' needs samples_per_prompt >= 2")
        if self.kl_mode not in ("reward", "loss"):
            raise ValueError(f"kl_mode must be 'reward' or 'loss', got {self.kl_mode!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SFTConfig:
    epochs: int = 1
    learning_rate: float = 2e-5
    batch_size: int = 4
    max_length: int = 512
    seed: int = 0
    log_every: int = 1
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    checkpoint_every: int = 50  # steps between resumable checkpoints (when given a resume path); 0 = none

    def __post_init__(self) -> None:
        require_positive_ints(self, ("epochs", "batch_size", "max_length", "log_every"))
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be 0 or more, got {self.checkpoint_every!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

    def to_dict(self) -> dict:
        return asdict(self)
