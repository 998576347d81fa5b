"""Direct preference optimization (DPO, Rafailov et al. 2023) and IPO (Azar et al. 2023) on human preference pairs.

The reward model's pairwise sigmoid loss applied to the policy's own log-probability ratios to a frozen reference:
with h = (log π(chosen) − log π_ref(chosen)) − (log π(rejected) − log π_ref(rejected)) summed over the answer's
tokens, DPO minimises −log σ(β·h − margin) and IPO (h − 1/(2β))², each pair weighted (1/C(K,2) for a ranking's
pairs). The reference's log-probabilities are computed once, before training, and cached: a training step runs the
policy alone. The loss counts the answer's tokens only (the prompt's turns are masked, as in SFT).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rewardmodel.train.data import PreferencePair, split_by_group, validate_pairs
from rewardmodel.train.loss import pairwise_loss
from rlhf.checkpoint import (
    checkpoint_due,
    load_resume_checkpoint,
    restore_rng_states,
    rng_states,
    save_resume_checkpoint,
)
from rlhf.devices import autocast_for
from rlhf.preferences import level_margin
from rlhf.training import TrainingStopped

from .config import DPOConfig
from .loading import load_policy
from .sft import IGNORE_INDEX, pad_rows, sft_label_mask
from .train import (
    RewardFn,
    _eval_samples,
    _evaluate,
    _sample_and_score,
    _sample_n_and_score,
    final_evaluation,
    held_out_answers,
    save_model_dir,
    seed_everything,
)

Encoded = tuple[list[int], list[int]]  # input_ids, labels (-100 off the answer)


def encode_answer(tokenizer: PreTrainedTokenizerBase, prompt: list[dict], answer: str, config: DPOConfig) -> Encoded:
    """The prompt and one answer as token ids, labels on the answer's tokens only (its end-of-turn token included).

    A prompt over `max_prompt_length` tokens keeps its end; the answer is cut to what `max_length` leaves.
    """
    ids, labels = sft_label_mask(tokenizer, [*prompt, {"role": "assistant", "content": answer}], last_turn_only=True)
    start = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(ids))
    prompt_ids = ids[:start][-config.max_prompt_length :]
    room = config.max_length - len(prompt_ids)
    return prompt_ids + ids[start:][:room], [IGNORE_INDEX] * len(prompt_ids) + labels[start:][:room]


def encode_pairs(tokenizer: PreTrainedTokenizerBase, pairs: list[PreferencePair], config: DPOConfig) -> list[tuple]:
    """(chosen, rejected) encodings of every pair; a pair whose answer keeps no token is refused, by its index."""
    encoded = []
    for index, pair in enumerate(pairs):
        sides = []
        for name in ("chosen", "rejected"):
            try:
                ids, labels = encode_answer(tokenizer, pair.prompt, getattr(pair, name), config)
            except ValueError as error:
                raise ValueError(f"pair {index}: {error}") from None
            if sum(label != IGNORE_INDEX for label in labels[1:]) == 0:
                raise ValueError(f"pair {index}: no {name} token within max_length={config.max_length}")
            sides.append((ids, labels))
        encoded.append(tuple(sides))
    return encoded


def collate(encoded: list[tuple], indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """One batch of 2B rows: the B chosen answers, then the B rejected ones, right-padded to the longest."""
    return pad_rows([encoded[i][0] for i in indices] + [encoded[i][1] for i in indices], pad_id)


def sequence_logps(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ log p(answer token | everything before it) per row, [N]; gradients flow when enabled.

    The vocabulary projection runs on the answer's positions only, not on every position of the batch: with a 49k
    vocabulary and short answers after long prompts that is most of the forward pass's memory and time saved.
    """
    input_ids, attention_mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    with autocast_for(input_ids.device):
        hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        logits = model.get_output_embeddings()(hidden.last_hidden_state[:, :-1][keep])
    logits = logits.float()
    picked = logits.gather(-1, targets[keep].unsqueeze(-1)).squeeze(-1) - logits.logsumexp(dim=-1)
    rows = torch.arange(len(input_ids), device=input_ids.device).unsqueeze(1).expand_as(keep)[keep]
    return torch.zeros(len(input_ids), device=input_ids.device, dtype=picked.dtype).index_add(0, rows, picked)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    weight: torch.Tensor | None = None,
    margin: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The batch's weighted mean loss (Σ w·l / Σ w) and, per pair, the implicit rewards β·(log π − log π_ref).

    sigmoid: the reward model's pairwise loss (rewardmodel.train.loss.pairwise_loss) on the implicit rewards,
    −log σ(β·h − margin); ipo: (h − 1/(2β))², the log-ratio gap pulled to a fixed target instead of to infinity.
    """
    chosen_reward = beta * (policy_chosen - reference_chosen)
    rejected_reward = beta * (policy_rejected - reference_rejected)
    if loss_type == "sigmoid":
        loss = pairwise_loss(chosen_reward, rejected_reward, margin=margin, weight=weight)
    elif loss_type == "ipo":
        gap = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
        losses = (gap - 1 / (2 * beta)) ** 2
        loss = losses.mean() if weight is None else (losses * weight).sum() / weight.sum()
    else:
        raise ValueError(f"loss_type must be 'sigmoid' or 'ipo', not {loss_type!r}")
    return loss, {"chosen_reward": chosen_reward.detach(), "rejected_reward": rejected_reward.detach()}


def pair_metrics(rewards: dict[str, torch.Tensor], chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, float]:
    """What DPOTrainer users watch: implicit-reward accuracy (chosen above rejected), mean margin, the policy's
    log-probabilities of the chosen and the rejected answers."""
    difference = rewards["chosen_reward"] - rewards["rejected_reward"]
    return {
        "accuracy": (difference > 0).float().mean().item(),
        "margin": difference.mean().item(),
        "chosen_reward": rewards["chosen_reward"].mean().item(),
        "rejected_reward": rewards["rejected_reward"].mean().item(),
        "logps_chosen": chosen.detach().mean().item(),
        "logps_rejected": rejected.detach().mean().item(),
    }


@torch.no_grad()
def reference_logps(
    model: PreTrainedModel, encoded: list[tuple], batch_size: int, pad_id: int, device: torch.device
) -> torch.Tensor:
    """[P, 2]: the reference's log-probabilities of every pair's chosen and rejected answer, one pass."""
    out = torch.zeros(len(encoded), 2)
    for start in range(0, len(encoded), batch_size):
        indices = list(range(start, min(start + batch_size, len(encoded))))
        batch = {key: value.to(device) for key, value in collate(encoded, indices, pad_id).items()}
        logps = sequence_logps(model, batch).cpu()
        out[indices, 0], out[indices, 1] = logps[: len(indices)], logps[len(indices) :]
    return out


def _pair_tensors(pairs: list[PreferencePair], config: DPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    weights = torch.tensor([pair.weight for pair in pairs], dtype=torch.float32)
    margins = torch.tensor([level_margin(p.level, config.margin, config.level_margins) for p in pairs])
    return weights, margins


def _step_loss(model, encoded, reference, weights, margins, indices, config, pad_id, device):
    batch = {key: value.to(device) for key, value in collate(encoded, indices, pad_id).items()}
    logps = sequence_logps(model, batch)
    chosen, rejected = logps[: len(indices)], logps[len(indices) :]
    ref = reference[indices].to(device)
    loss, rewards = dpo_loss(
        chosen,
        rejected,
        ref[:, 0],
        ref[:, 1],
        config.beta,
        config.loss_type,
        weight=weights[indices].to(device),
        margin=margins[indices].to(device) if config.margin != "none" else None,
    )
    return loss, pair_metrics(rewards, chosen, rejected)


@torch.no_grad()
def evaluate_pairs(model, encoded, reference, weights, margins, config, pad_id, device) -> dict[str, float]:
    """The held-out pairs' loss and metrics, weighted by batch size (eval_ prefix)."""
    totals: dict[str, float] = {}
    for start in range(0, len(encoded), config.batch_size):
        indices = list(range(start, min(start + config.batch_size, len(encoded))))
        loss, metrics = _step_loss(model, encoded, reference, weights, margins, indices, config, pad_id, device)
        for key, value in {"loss": loss.item(), **metrics}.items():
            totals[key] = totals.get(key, 0.0) + value * len(indices)
    return {f"eval_{key}": value / len(encoded) for key, value in totals.items()}


def held_out_prompts(pairs: list[PreferencePair]) -> list[list[dict]]:
    """The distinct prompts of the held-out pairs, in order: what the final comparison samples answers to."""
    seen, prompts = set(), []
    for pair in pairs:
        if pair.group_id() not in seen:
            seen.add(pair.group_id())
            prompts.append(pair.prompt)
    return prompts


def train_dpo(
    base_path: str | os.PathLike,
    pairs: list[PreferencePair],
    config: DPOConfig,
    output_dir: str | os.PathLike,
    reward_fn: RewardFn | None = None,
    on_log: Callable[[int, dict], None] | None = None,
    on_samples: Callable[[int, list[dict]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    resume_path: str | os.PathLike | None = None,
) -> dict:
    """DPO (or IPO) of the policy at base_path on `pairs`; the model goes to output_dir/final.

    The pairs are split by prompt group (`eval_fraction` held out, as a reward run splits them). Every `log_every`
    steps `on_log` gets the batch's loss, implicit-reward accuracy, mean margin and log-probabilities; every
    `eval_every` steps (0: each epoch's end) the same on the held-out pairs (eval_ keys). With `reward_fn` (a reward
    model's scores), the final policy and the reference then answer the held-out prompts and are compared as a
    REINFORCE run's are (reward, win rate, KL, samples; the same functions). With `resume_path`, a resumable
    checkpoint every `checkpoint_every` steps, continued from when it exists.
    """
    validate_pairs(pairs)

    def progress(step: int, total: int, phase: str) -> None:
        if on_progress is not None:
            on_progress(step, total, phase)

    progress(0, 0, "loading")
    seed_everything(config.seed)
    model, tokenizer = load_policy(base_path, dtype=torch.float32)
    device = next(model.parameters()).device
    model.eval()  # no dropout: the log-ratio to the reference is of the same deterministic function
    pad_id = tokenizer.pad_token_id
    train_pairs, eval_pairs = split_by_group(pairs, config.eval_fraction, config.seed)
    progress(0, 0, "tokenizing")
    train_encoded = encode_pairs(tokenizer, train_pairs, config)
    eval_encoded = encode_pairs(tokenizer, eval_pairs, config)
    train_weights, train_margins = _pair_tensors(train_pairs, config)
    eval_weights, eval_margins = _pair_tensors(eval_pairs, config) if eval_pairs else (None, None)

    steps_per_epoch = -(-len(train_encoded) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    step, start_epoch, start_batch, losses = 0, 1, 0, []
    resume = load_resume_checkpoint(resume_path)
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        step, losses, start_epoch, start_batch = resume["step"], resume["losses"], resume["epoch"], resume["batch"]
        rng.setstate(resume["epoch_rng"])
        restore_rng_states(resume["rng"])
        train_reference, eval_reference = resume["train_reference"], resume["eval_reference"]
    else:
        # The reference is the starting policy: its log-probabilities once, before any update.
        train_reference = reference_logps(model, train_encoded, config.batch_size, pad_id, device)
        eval_reference = reference_logps(model, eval_encoded, config.batch_size, pad_id, device)

    started = time.monotonic()
    state = {"config": config.to_dict(), "base_path": str(base_path), "method": "dpo"}
    eval_metrics: dict[str, float] = {}
    progress(step, total_steps, "training")
    for epoch in range(start_epoch, config.epochs + 1):
        epoch_rng = rng.getstate()
        order = list(range(len(train_encoded)))
        rng.shuffle(order)
        for index, start in enumerate(range(0, len(order), config.batch_size)):
            if epoch == start_epoch and index < start_batch:
                continue  # trained before the run was resumed
            if should_stop is not None and should_stop():
                raise TrainingStopped(f"stopped at step {step} of {total_steps}")
            step += 1
            indices = order[start : start + config.batch_size]
            loss, metrics = _step_loss(
                model, train_encoded, train_reference, train_weights, train_margins, indices, config, pad_id, device
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            losses.append(loss.item())
            progress(step, total_steps, "training")
            logged = {"loss": losses[-1], **metrics}
            end_of_epoch = index == steps_per_epoch - 1
            if eval_encoded and (config.eval_every and step % config.eval_every == 0 or end_of_epoch):
                progress(step, total_steps, "evaluating")
                eval_metrics = evaluate_pairs(
                    model, eval_encoded, eval_reference, eval_weights, eval_margins, config, pad_id, device
                )
                logged.update(eval_metrics)
                progress(step, total_steps, "training")
            if on_log is not None and (step % config.log_every == 0 or step == total_steps or "eval_loss" in logged):
                elapsed = time.monotonic() - started
                on_log(
                    step,
                    {
                        "step": step,
                        "total_steps": total_steps,
                        "epoch": epoch,
                        **logged,
                        "grad_norm": float(grad_norm),
                        "elapsed_s": elapsed,
                        "eta_s": elapsed / max(1, len(losses)) * (total_steps - step),
                    },
                )
            if checkpoint_due(step, total_steps, config.checkpoint_every, resume_path):
                progress(step, total_steps, "saving")
                save_model_dir(model, tokenizer, Path(output_dir) / f"checkpoint-{step}", {**state, "step": step})
                save_resume_checkpoint(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "epoch": epoch,
                        "batch": index + 1,
                        "epoch_rng": epoch_rng,
                        "rng": rng_states(),
                        "losses": losses,
                        "train_reference": train_reference,
                        "eval_reference": eval_reference,
                        "config": config.to_dict(),
                    },
                    resume_path,
                )
                progress(step, total_steps, "training")

    result: dict = {
        "steps": step,
        "pairs": len(train_pairs),
        "eval_pairs": len(eval_pairs),
        "first_loss": losses[0],
        "final_loss": losses[-1],
        **eval_metrics,
        "elapsed_s": time.monotonic() - started,
    }
    prompts = held_out_prompts(eval_pairs)[: config.eval_max_prompts]
    if reward_fn is not None and prompts:
        progress(step, total_steps, "evaluating")
        compared = _compare_with_reference(model, base_path, tokenizer, reward_fn, prompts, config, step, on_samples)
        result.update(compared)
    progress(step, total_steps, "saving")
    result["model_path"] = save_model_dir(model, tokenizer, Path(output_dir) / "final", {**state, "step": step})
    return result


def _compare_with_reference(model, base_path, tokenizer, reward_fn, prompts, config, step, on_samples) -> dict:
    """The held-out comparison a REINFORCE run ends with (policy.reinforce.train's functions): the reward model's
    scores of the policy's and the reference's answers, win rate, KL, length, and the answers themselves."""
    device = next(model.parameters()).device
    sampling = config.reinforce_sampling()
    # The reference is loaded again only now: during training its log-probabilities were all it took.
    reference, _ = load_policy(base_path, device=device, dtype=torch.float32)
    reference = reference.requires_grad_(False).eval()
    reference_eval = _sample_and_score(reference, tokenizer, reward_fn, prompts, sampling, device)
    evaluation = _evaluate(model, reference, tokenizer, reward_fn, prompts, sampling, device, reference_eval)
    ranked = _sample_n_and_score(model, tokenizer, reward_fn, prompts, sampling, device)
    if on_samples is not None:
        on_samples(step, _eval_samples(prompts, reference_eval, "reference"))
        on_samples(step, _eval_samples(prompts, evaluation["policy"], "eval"))
    metrics = evaluation["metrics"]
    del reference
    return {
        **final_evaluation(metrics, len(prompts)),
        "eval_samples": held_out_answers(prompts, evaluation, reference_eval, ranked),
    }
