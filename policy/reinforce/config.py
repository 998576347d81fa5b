"""Training configurations (nanoGPT style: one dataclass per run kind, defaults that finish in minutes on a CPU).

A default REINFORCE iteration (8 samples, <=128 prompt + 32 new tokens, 135M policy) is 13-21 s on 2 quiet CPU cores
with full fine-tuning, mostly the update; LoRA (lora_rank) or top blocks (trainable_top_blocks) make the update
cheaper and need no second copy of the weights (docs/benchmarks.md). Raise steps and lengths on a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rlhf.distributed import FSDP_REINFORCE_MISSING, check_strategy
from rlhf.options import OptionError, check_options, option, processes_option, strategy_option
from rlhf.preferences import LEVEL_MARGINS, MARGIN_CHOICES

from .lora import ALL_LINEAR, TrainableError, parse_target_modules


# What to train (REINFORCE and SFT alike); LoRA and top blocks measured against full fine-tuning in
# docs/benchmarks.md.
def lora_rank_option() -> int:
    return option(0, low=0, high=1024, advanced=True, label="LoRA rank", help="0: train every weight (no LoRA).")


def lora_alpha_option() -> float:
    return option(16.0, low=1e-3, high=1e5, advanced=True, label="LoRA alpha", help="Adapter scale is alpha / rank.")


def lora_target_modules_option() -> str:
    return option(
        ALL_LINEAR,
        advanced=True,
        label="LoRA target modules",
        help=f"{ALL_LINEAR} or module names separated by commas (q_proj,v_proj).",
    )


def trainable_top_blocks_option() -> int:
    return option(
        0,
        low=0,
        high=1024,
        advanced=True,
        help="Train only the top k transformer blocks (the backward pass stops there); 0: all of them.",
    )


def check_trainable(config: object) -> None:
    try:
        parse_target_modules(config.lora_target_modules)
    except TrainableError as error:
        raise OptionError(error.name, str(error)) from None
    if config.lora_rank and config.trainable_top_blocks:
        raise OptionError("trainable_top_blocks", "Choose LoRA (lora_rank > 0) or trainable_top_blocks, not both.")


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
    # 64 held-out prompts put a 95 % interval about ±0.12 wide around a win rate of 0.5; 8 left it ±0.3.
    eval_max_prompts: int = option(
        64,
        low=1,
        high=10_000,
        advanced=True,
        label="Held-out prompts",
        help="Held-out prompts per evaluation: a fifth of the distinct prompts, at most this many.",
    )
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
    # No LoRA dropout here: the policy samples and trains in eval mode (the sampled and the trained model must be
    # the same), so dropout would never apply.
    lora_rank: int = lora_rank_option()
    lora_alpha: float = lora_alpha_option()
    lora_target_modules: str = lora_target_modules_option()
    trainable_top_blocks: int = trainable_top_blocks_option()

    def __post_init__(self) -> None:
        check_options(self)
        check_trainable(self)
        check_strategy(self.processes, self.strategy, fsdp_missing=FSDP_REINFORCE_MISSING)
        if self.prompts_per_step % self.processes:
            raise OptionError(
                "prompts_per_step", "prompts_per_step must be a multiple of processes: each takes an equal share."
            )
        if self.baseline == "loo" and self.samples_per_prompt < 2:
            raise OptionError("samples_per_prompt", "The leave-one-out baseline needs samples_per_prompt >= 2.")

    def to_dict(self) -> dict:
        return asdict(self)

    def evaluation_passes(self, step: int, *, with_reference: bool) -> int:
        """Answers to each held-out prompt the evaluation at `step` samples: the policy's one, the reference's the
        first time, and n more of the final policy at the last step (for a ranking batch)."""
        return 1 + int(with_reference) + (self.samples_per_prompt if step == self.steps else 0)

    def evaluation_answers_from(self, step: int, eval_prompts: int) -> int:
        """The answers that all evaluations at `step` and after sample, for `eval_prompts` held-out prompts (the run
        page's ETA counts them): one every eval_every steps and one at the last step."""
        step = max(step, 1)
        if step > self.steps:
            return 0
        first_evaluation = min(self.eval_every, self.steps)
        multiples = self.steps // self.eval_every - (step - 1) // self.eval_every
        evaluations = multiples + int(self.steps % self.eval_every != 0)
        passes = evaluations + self.samples_per_prompt + int(step <= first_evaluation)
        return eval_prompts * passes


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
    lora_rank: int = lora_rank_option()
    lora_alpha: float = lora_alpha_option()
    lora_dropout: float = option(0.0, low=0.0, high=0.9, advanced=True, label="LoRA dropout")
    lora_target_modules: str = lora_target_modules_option()
    trainable_top_blocks: int = trainable_top_blocks_option()

    def __post_init__(self) -> None:
        check_options(self)
        check_trainable(self)

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
    level_margins: dict = field(default_factory=lambda: dict(LEVEL_MARGINS))
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
