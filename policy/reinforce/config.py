"""Training configurations (nanoGPT style: one dataclass per run kind, defaults that finish in minutes on a CPU).

A default REINFORCE iteration (8 samples, <=128 prompt + 32 new tokens, 135M policy) is about a minute on a busy
2-core CPU, mostly prefill and the backward pass (docs/benchmarks.md); raise steps and lengths on a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rlhf.distributed import FSDP_REINFORCE_MISSING, check_strategy
from rlhf.options import OptionError, check_options, option, processes_option, strategy_option
from rlhf.preferences import DEFAULT_LEVEL_MARGINS, MARGIN_CHOICES


@dataclass
class ReinforceConfig:
    """REINFORCE settings; `option(...)` fields are the user's (forms, commands and API derive from them)."""

    steps: int = option(10, low=1, high=100_000, help="Policy updates.")
    prompts_per_step: int = option(2, low=1, high=1024)
    samples_per_prompt: int = option(4, low=1, high=64, label="Samples per prompt (n)")  # n in the lecture
    temperature: float = option(1.0, low=0.0, high=10.0, advanced=True, help="Sampling temperature; 0: greedy.")
    top_p: float = option(1.0, low=1e-6, high=1.0, advanced=True, label="Top-p")
    max_new_tokens: int = option(32, low=1, high=4096, help="Longest answer sampled.")
    max_prompt_tokens: int = option(
        128, low=8, high=32_768, advanced=True, help="Longer prompts keep their end (the latest turns)."
    )
    learning_rate: float = option(1e-5, low=1e-9, high=1.0)
    kl_coef: float = option(0.05, low=0.0, high=100.0, label="KL coefficient (β)")
    kl_mode: str = option(
        "reward",
        choices=(("reward", "Per-token penalty in the reward"), ("loss", "k3 estimator added to the loss")),
        advanced=True,
        label="KL mode",
    )
    baseline: str = option(
        "loo",
        choices=(
            ("loo", "Leave-one-out over the n samples of a prompt"),
            ("mean", "Batch mean"),
            ("none", "None (the lecture's plain form)"),
        ),
    )
    whiten_rewards: bool = option(False, advanced=True)
    no_eos_penalty: float | None = option(
        None, low=0.0, high=100.0, advanced=True, help="Subtracted from the score of an answer that never ends."
    )
    max_grad_norm: float = option(1.0, low=1e-6, high=1000.0, advanced=True, label="Max gradient norm")
    weight_decay: float = option(0.0, low=0.0, high=1.0, advanced=True)
    eval_every: int = option(5, low=1, high=1_000_000, advanced=True, help="Steps between held-out evaluations.")
    eval_max_prompts: int = option(8, low=1, high=10_000, advanced=True, help="Held-out prompts per evaluation.")
    checkpoint_every: int = option(
        5,
        low=1,
        high=1_000_000,
        advanced=True,
        help="Steps between saved checkpoint-<step> folders and resumable checkpoints.",
    )
    seed: int = option(0, low=0, high=2**31 - 1, advanced=True)
    log_every: int = option(1, low=1, high=1_000_000, advanced=True)
    # Several processes (torchrun on the worker's machine): each samples, scores and trains on its share of the
    # step's prompts; the gradients are averaged, as if one process had taken them all.
    processes: int = processes_option()
    strategy: str = strategy_option()

    def __post_init__(self) -> None:
        check_options(self)
        check_strategy(self.processes, self.strategy, fsdp_missing=FSDP_REINFORCE_MISSING)
        if self.prompts_per_step % self.processes:
            raise OptionError(
                "prompts_per_step", "prompts_per_step must be a multiple of processes: each takes an equal share."
            )
        if self.baseline == "loo" and self.samples_per_prompt < 2:
            raise OptionError("samples_per_prompt", "The leave-one-out baseline needs samples_per_prompt >= 2.")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SFTConfig:
    epochs: int = option(1, low=1, high=1000)
    learning_rate: float = option(2e-5, low=1e-9, high=1.0)
    batch_size: int = option(4, low=1, high=1024)
    max_length: int = option(512, low=8, high=32_768, advanced=True, help="Tokens per dialogue.")
    seed: int = option(0, low=0, high=2**31 - 1, advanced=True)
    log_every: int = option(1, low=1, high=1_000_000, advanced=True)
    max_grad_norm: float = option(1.0, low=1e-6, high=1000.0, advanced=True, label="Max gradient norm")
    weight_decay: float = option(0.0, low=0.0, high=1.0, advanced=True)
    checkpoint_every: int = option(
        50, low=0, high=1_000_000, advanced=True, help="Steps between resumable checkpoints; 0: none."
    )
    # Several processes (torchrun on the worker's machine): each trains on its slice of every batch (DDP).
    processes: int = processes_option()

    def __post_init__(self) -> None:
        check_options(self)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DPOConfig:
    """Direct preference optimization (Rafailov et al. 2023) and IPO (Azar et al. 2023) on preference pairs: the
    pairwise sigmoid loss on the policy's log-probability ratios to a frozen reference, no reward model, no rollouts.
    """

    epochs: int = option(1, low=1, high=1000)
    learning_rate: float = option(1e-6, low=1e-9, high=1.0)
    beta: float = option(0.1, low=1e-4, high=100.0, label="β", help="How far from the reference; smaller: farther.")
    loss_type: str = option(
        "sigmoid",
        choices=(("sigmoid", "DPO: −log σ(β·h − margin)"), ("ipo", "IPO: (h − 1/(2β))²")),
        label="Loss",
        help="h: the chosen answer's log-ratio to the reference minus the rejected one's.",
    )
    batch_size: int = option(4, low=1, high=1024, help="Pairs per step.")
    margin: str = option(
        "none", choices=MARGIN_CHOICES, help="Llama-2 style, as the reward model's: clear preferences win by more."
    )
    level_margins: dict = field(default_factory=lambda: dict(DEFAULT_LEVEL_MARGINS))
    eval_fraction: float = option(0.2, low=0.0, high=0.9, help="Share of prompts held out for evaluation.")
    max_length: int = option(512, low=8, high=32_768, advanced=True, help="Tokens per prompt and answer.")
    max_prompt_length: int = option(
        256, low=4, high=32_768, advanced=True, help="Longer prompts keep their end (the latest turns)."
    )
    eval_every: int = option(
        0, low=0, high=1_000_000, advanced=True, help="Steps between held-out evaluations; 0: after each epoch."
    )
    # The final comparison on held-out prompts (with a reward model): how answers are sampled, as REINFORCE's.
    eval_max_prompts: int = option(8, low=1, high=10_000, advanced=True, help="Held-out prompts sampled at the end.")
    samples_per_prompt: int = option(
        4, low=1, high=64, advanced=True, label="Answers per held-out prompt", help="For a ranking batch."
    )
    max_new_tokens: int = option(32, low=1, high=4096, advanced=True, help="Longest answer sampled at the end.")
    temperature: float = option(1.0, low=0.0, high=10.0, advanced=True, help="Sampling temperature; 0: greedy.")
    seed: int = option(0, low=0, high=2**31 - 1, advanced=True)
    log_every: int = option(1, low=1, high=1_000_000, advanced=True)
    max_grad_norm: float = option(1.0, low=1e-6, high=1000.0, advanced=True, label="Max gradient norm")
    weight_decay: float = option(0.0, low=0.0, high=1.0, advanced=True)
    checkpoint_every: int = option(
        50, low=0, high=1_000_000, advanced=True, help="Steps between resumable checkpoints; 0: none."
    )
    processes: int = processes_option()

    def __post_init__(self) -> None:
        check_options(self)
        if self.processes > 1:
            # The trainer reads hidden states past the DDP wrapper (logits on answer tokens only); not shared yet.
            raise OptionError("processes", "processes: DPO trains in one process for now; set processes to 1.")
        if self.loss_type == "ipo" and self.margin != "none":
            raise OptionError("margin", "margin: IPO has no margin (its target gap is 1/(2β)); use the sigmoid loss.")
        if self.max_prompt_length >= self.max_length:
            raise OptionError("max_prompt_length", "max_prompt_length must be below max_length: answers need room.")

    def to_dict(self) -> dict:
        return asdict(self)

    def reinforce_sampling(self) -> ReinforceConfig:
        """The sampling settings of the final held-out comparison, in the form REINFORCE's evaluation takes."""
        return ReinforceConfig(
            samples_per_prompt=self.samples_per_prompt,
            baseline="loo" if self.samples_per_prompt > 1 else "none",
            max_new_tokens=self.max_new_tokens,
            max_prompt_tokens=max(8, self.max_prompt_length),
            temperature=self.temperature,
            eval_max_prompts=self.eval_max_prompts,
            seed=self.seed,
        )
