"""The reward-model training loop: pairwise sigmoid loss over human preference pairs.

One clear loop (nanoGPT style): encode every pair once, batch by length, chosen and rejected in one forward pass,
gradient accumulation, linear warm-up then linear decay, gradient clipping, bf16 autocast where the hardware has
fast bf16 matmuls (CUDA; CPUs with AVX512-BF16 or AMX), fp32 elsewhere.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from rewardmodel.train.backbone import load_reward_backbone, load_tokenizer
from rewardmodel.train.card import data_summary, write_model_card
from rewardmodel.train.config import RewardTrainConfig
from rewardmodel.train.data import (
    TRANSCRIPT_CHAT_TEMPLATE,
    EncodedPairs,
    PreferencePair,
    RankedResponses,
    encode_pairs,
    encode_texts,
    has_own_chat_template,
    length_grouped_batches,
    split_by_group,
    validate_pairs,
)
from rewardmodel.train.loss import pairwise_loss
from rewardmodel.train.scoring import collate, preference_metrics, rewards_of, score_sequences
from rlhf.checkpoint import (
    checkpoint_due,
    load_resume_checkpoint,
    restore_rng_states,
    rng_states,
    save_resume_checkpoint,
)
from rlhf.devices import bf16_is_fast
from rlhf.distributed import (
    distributed_context,
    full_state_dicts,
    load_full_optimizer_state,
    set_gradient_sync,
    shard_fsdp,
    wrap_ddp,
)
from rlhf.preferences import loss_margin
from rlhf.rankings import kendall_tau, tiers_from_rewards
from rlhf.training import TrainingStopped


def linear_warmup_decay(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = math.ceil(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def sample_pairs(
    encoded: EncodedPairs, rng: random.Random, per_group: int = 0, per_ranking: int = 0
) -> tuple[list[int], list[float]]:
    """This epoch's pairs and their weights: `per_ranking` pairs drawn afresh from each ranking (0: all of them),
    then `per_group` per prompt group (0: all). Drawn pairs are up-weighted by (pairs there / drawn), so a ranking
    keeps its total weight of 1 (M pairs at 1/M each, as `rlhf.rankings.pairs_of` "sample:M") and a group its own.
    """
    indices = list(range(len(encoded)))
    weights = list(encoded.weights)
    if per_ranking:
        ranked = [i for i in indices if encoded.rankings[i]]
        unranked = [i for i in indices if not encoded.rankings[i]]
        indices = unranked + _sample_within(encoded.rankings, ranked, weights, per_ranking, rng)
    if per_group:
        indices = _sample_within(encoded.groups, indices, weights, per_group, rng)
    return sorted(indices), weights


def _sample_within(
    keys: list[str], indices: list[int], weights: list[float], limit: int, rng: random.Random
) -> list[int]:
    """At most `limit` of `indices` per key; the weights of drawn pairs grow (in place) so each key keeps its sum."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for index in indices:
        by_key[keys[index]].append(index)
    chosen: list[int] = []
    for members in by_key.values():
        if len(members) <= limit:
            chosen.extend(members)
            continue
        sampled = rng.sample(members, limit)
        for index in sampled:
            weights[index] = weights[index] * len(members) / limit
        chosen.extend(sampled)
    return chosen


@torch.inference_mode()
def evaluate_encoded(model, encoded: EncodedPairs, pad_token_id: int, batch_size: int, bf16: bool) -> dict:
    was_training = model.training
    model.eval()
    r_chosen = score_sequences(model, encoded.chosen, pad_token_id, batch_size, bf16)
    r_rejected = score_sequences(model, encoded.rejected, pad_token_id, batch_size, bf16)
    model.train(was_training)
    metrics = preference_metrics(r_chosen, r_rejected, encoded.levels, encoded.weights)
    result = {f"eval_{key}": value for key, value in metrics.items()}
    rankings = encoded.rankings or [""] * len(encoded)
    for source, keep in (("ranking", True), ("pairwise", False)):
        # Accuracy on the pairs that came from rankings, and on the others, apart: the two are different tasks.
        wins = [c > r for c, r, key in zip(r_chosen, r_rejected, rankings, strict=True) if bool(key) == keep]
        result[f"eval_{source}_pairs"] = len(wins)
        result[f"eval_{source}_accuracy"] = sum(wins) / len(wins) if wins else None
    return result


@dataclass
class EncodedRankings:
    """Held-out rankings ready to score: every response's token ids (flat, ranking after ranking), how many
    responses each ranking has, and the people's order of each."""

    sequences: list[list[int]]
    sizes: list[int]
    tiers: list[list[list[int]]]

    def __len__(self) -> int:
        return len(self.sizes)


def encode_rankings(tokenizer, rankings: list[RankedResponses], max_length: int) -> EncodedRankings:
    prompts = [ranking.prompt for ranking in rankings for _ in ranking.responses]
    responses = [response for ranking in rankings for response in ranking.responses]
    sequences, _, _ = encode_texts(tokenizer, prompts, responses, max_length)
    return EncodedRankings(sequences, [len(r.responses) for r in rankings], [r.tiers for r in rankings])


@torch.inference_mode()
def evaluate_rankings(model, encoded: EncodedRankings, pad_token_id: int, batch_size: int, bf16: bool) -> dict:
    """Mean Kendall's tau between the model's order of each held-out ranking's responses (by reward) and the
    people's order; rankings where tau is undefined (every reward equal) are left out of the mean."""
    if not len(encoded):
        return {}
    was_training = model.training
    model.eval()
    rewards = score_sequences(model, encoded.sequences, pad_token_id, batch_size, bf16)
    model.train(was_training)
    taus, start = [], 0
    for size, tiers in zip(encoded.sizes, encoded.tiers, strict=True):
        tau = kendall_tau(tiers_from_rewards(rewards[start : start + size]), tiers)
        start += size
        if not math.isnan(tau):
            taus.append(tau)
    return {"eval_rankings": len(encoded), "eval_kendall_tau": sum(taus) / len(taus) if taus else None}


def train_reward_model(
    pairs: list[PreferencePair],
    config: RewardTrainConfig,
    output_dir: str | Path,
    on_log: Callable[[int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    data_description: dict | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    resume_path: str | Path | None = None,
    rankings: list[RankedResponses] | None = None,
) -> dict:
    """Train a reward model on `pairs` and save it to `output_dir`; return the final metrics.

    Writes save_pretrained(model, tokenizer), metrics.json, train_config.json and a model card (README.md; what the
    data was, beyond the pairs' own counts, comes from `data_description`). Raises TrainingStopped (nothing
    written) when should_stop() turns True, ValueError on bad pairs or config. `on_log(step, metrics)` gets the
    metrics every `log_every` steps; `on_progress(step, total_steps, phase)` is told of every step and of each
    phase ("loading", "tokenizing", "training", "evaluating", "saving"), and must be cheap. With `resume_path`,
    saves a resumable checkpoint there every `config.checkpoint_every` steps, and continues from it when it exists:
    the same pairs and config then give the same model as an uninterrupted run. `rankings` are the rankings the
    ranking pairs came from: those whose prompt group is held out give the mean Kendall's tau of the evaluation.

    Started by torchrun (rewardmodel.train.launch), every rank runs this with the same pairs and seed: each builds
    the same global batches and trains on its slice of each (DDP averages the gradients), metrics are summed over
    ranks, and rank 0 alone evaluates, reports, checkpoints and saves; the other ranks return {}. With
    `config.strategy` "fsdp" the model is sharded over the ranks instead (FSDP2): the same batches, losses and
    reductions, but every rank joins each evaluation and gathers the full weights for rank 0 to save (so it saves
    what one process saves) and the full optimizer state for its checkpoints.
    """
    config.validate()
    validate_pairs(pairs)

    def progress(step: int, total: int, phase: str) -> None:
        if on_progress is not None:
            on_progress(step, total, phase)

    progress(0, 0, "loading")
    ctx = distributed_context(config.device)
    master_process = ctx.master_process
    fsdp = ctx.ddp and config.strategy == "fsdp"
    evaluating_rank = master_process or fsdp  # a sharded model's forward needs every rank
    device = ctx.device
    bf16 = config.precision == "bf16" or (config.precision == "auto" and bf16_is_fast(device))
    torch.manual_seed(config.seed)  # the fresh reward head is drawn from it
    rng = random.Random(config.seed)

    tokenizer = load_tokenizer(config.backbone)
    raw_model = load_reward_backbone(config.backbone, tokenizer)
    if not fsdp:  # a sharded model goes to the device unit by unit as fully_shard shards it: never whole
        raw_model.to(device)
    if config.disable_dropout:
        for module in raw_model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    raw_model.train()
    pad_id = tokenizer.pad_token_id

    progress(0, 0, "tokenizing")
    train_pairs, eval_pairs = split_by_group(pairs, config.eval_fraction, config.seed)
    train_set = encode_pairs(tokenizer, train_pairs, config.max_length)
    eval_set = encode_pairs(tokenizer, eval_pairs, config.max_length)
    eval_groups = set(eval_set.groups)
    held_out = [ranking for ranking in rankings or [] if ranking.group_id() in eval_groups]
    eval_rankings = encode_rankings(tokenizer, held_out, config.max_length)
    lengths = [train_set.length(i) for i in range(len(train_set))]
    margins = [
        loss_margin(level, config.level_margins) if config.margin == "level" else 0.0 for level in train_set.levels
    ]

    pairs_per_epoch = len(
        sample_pairs(train_set, random.Random(0), config.max_pairs_per_group, config.pairs_per_ranking)[0]
    )
    micro_batches_per_epoch = math.ceil(pairs_per_epoch / config.batch_size)
    steps_per_epoch = math.ceil(micro_batches_per_epoch / config.grad_accum_steps)
    total_steps = steps_per_epoch * config.epochs

    resume = load_resume_checkpoint(resume_path)
    if resume is not None:  # the full weights, on every rank, before any sharding
        raw_model.load_state_dict(resume["model"])
    if fsdp:
        shard_fsdp(raw_model, ctx)  # in place, before the optimizer takes the (now sharded) parameters
    optimizer = torch.optim.AdamW(
        raw_model.parameters(),
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        fused=device.type in ("cpu", "cuda"),  # one pass over the weights instead of ~10 (~4 % of a CPU step)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(total_steps, config.warmup_ratio))

    def report(step: int, metrics: dict) -> None:
        if on_log is not None:
            on_log(step, metrics)

    def evaluate(step: int) -> dict:
        progress(step, total_steps, "evaluating")
        metrics = evaluate_encoded(raw_model, eval_set, pad_id, config.batch_size * 2, bf16)
        metrics.update(evaluate_rankings(raw_model, eval_rankings, pad_id, config.batch_size * 2, bf16))
        progress(step, total_steps, "training")
        return metrics

    progress(0, total_steps, "training")

    step = 0
    eval_metrics: dict = {}
    window = {"loss": 0.0, "correct": 0, "pairs": 0, "seconds": 0.0, "batches": 0}
    train_seconds, train_pairs_done, last_loss = 0.0, 0, None
    start_epoch, start_batch = 0, 0
    if resume is not None:
        if fsdp:  # saved by full_state_dicts: keyed by parameter name, each rank keeps its shard
            load_full_optimizer_state(raw_model, optimizer, resume["optimizer"])
        else:
            optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        step, start_epoch, start_batch = resume["step"], resume["epoch"], resume["batch"]
        window, eval_metrics, last_loss = resume["window"], resume["eval_metrics"], resume["last_loss"]
        train_seconds, train_pairs_done = resume["train_seconds"], resume["train_pairs_done"]
        rng.setstate(resume["epoch_rng"])  # the epoch's batches are drawn again from where they were drawn
        restore_rng_states(resume["rng"])
        if not master_process:  # rank 0 saved the window summed over ranks
            window = dict.fromkeys(window, 0)
    model = raw_model if fsdp else wrap_ddp(raw_model, ctx)
    for epoch in range(start_epoch, config.epochs):
        epoch_rng = rng.getstate()
        indices, weights = sample_pairs(train_set, rng, config.max_pairs_per_group, config.pairs_per_ranking)
        batches = length_grouped_batches(indices, lengths, config.batch_size, rng)
        first_batch = start_batch if epoch == start_epoch else 0
        for first in range(first_batch, len(batches), config.grad_accum_steps):
            if should_stop is not None and should_stop():
                raise TrainingStopped(f"stopped at step {step} of {total_steps}")
            started = time.perf_counter()
            group = batches[first : first + config.grad_accum_steps]
            for micro_step, batch in enumerate(group):
                # Every rank has the same global batch and trains on its slice; a rank whose slice is empty (a
                # batch smaller than the world) still joins the gradient all-reduce with one pair at weight 0.
                share = ctx.shard(batch)
                real_pairs = len(share)
                share_weights = [weights[i] for i in share] if share else [0.0]
                share = share or batch[:1]
                sequences = [train_set.chosen[i] for i in share] + [train_set.rejected[i] for i in share]
                if ctx.ddp:  # reduce the gradients once, on the last micro-batch of the step
                    set_gradient_sync(model, micro_step == len(group) - 1)
                rewards = rewards_of(model, collate(sequences, pad_id, device), bf16)
                r_chosen, r_rejected = rewards.chunk(2)
                loss = pairwise_loss(
                    r_chosen,
                    r_rejected,
                    torch.tensor([margins[i] for i in share], device=device),
                    torch.tensor(share_weights, device=device),
                    # this rank's part of the batch's loss: the parts add up to the 1-process loss
                    weight_total=sum(weights[i] for i in batch) if ctx.ddp else None,
                )
                # DDP and FSDP average gradients over ranks; scaling by the world size makes that their sum.
                (loss * ctx.world_size / len(group)).backward()
                window["loss"] += loss.item()
                window["batches"] += 1
                window["correct"] += (r_chosen > r_rejected)[:real_pairs].sum().item()
                window["pairs"] += real_pairs
            torch.nn.utils.clip_grad_norm_(raw_model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            elapsed = time.perf_counter() - started
            window["seconds"] += elapsed
            train_seconds += elapsed
            train_pairs_done += sum(len(b) for b in group)
            progress(step, total_steps, "training")

            end_of_epoch = first + config.grad_accum_steps >= len(batches)
            if step % config.log_every == 0 or end_of_epoch:
                window["loss"], window["correct"], window["pairs"] = ctx.all_reduce_sum(
                    [window["loss"], window["correct"], window["pairs"]]
                )
                last_loss = window["loss"] / window["batches"]
                metrics = {
                    "step": step,
                    "total_steps": total_steps,
                    "epoch": epoch + (first + len(group)) / len(batches),
                    "loss": last_loss,
                    "accuracy": window["correct"] / window["pairs"],
                    "learning_rate": scheduler.get_last_lr()[0],
                    "pairs_per_second": window["pairs"] / window["seconds"],
                }
                window = dict.fromkeys(window, 0)
                if not evaluating_rank:
                    pass  # rank 0 alone evaluates (with FSDP every rank does); rank 0 alone reports
                elif len(eval_set) and (end_of_epoch or (config.eval_every and step % config.eval_every == 0)):
                    eval_metrics = evaluate(step)
                    metrics.update(eval_metrics)
                report(step, metrics)
            elif evaluating_rank and len(eval_set) and config.eval_every and step % config.eval_every == 0:
                eval_metrics = evaluate(step)
                report(step, {"step": step, "total_steps": total_steps, "epoch": epoch, **eval_metrics})
            if checkpoint_due(step, total_steps, config.checkpoint_every, resume_path):
                saved_window = dict(window)
                if ctx.ddp:  # what every rank has gathered since the last log, so that rank 0 can resume it
                    saved_window["loss"], saved_window["correct"], saved_window["pairs"] = ctx.all_reduce_sum(
                        [window["loss"], window["correct"], window["pairs"]]
                    )
                if fsdp:
                    model_state, optimizer_state = full_state_dicts(raw_model, optimizer)
                else:
                    model_state, optimizer_state = raw_model.state_dict(), optimizer.state_dict()
                if not master_process:
                    continue
                save_resume_checkpoint(
                    {
                        "model": model_state,
                        "optimizer": optimizer_state,
                        "scheduler": scheduler.state_dict(),
                        "step": step,
                        "epoch": epoch,
                        "batch": first + config.grad_accum_steps,  # the next micro-batch of this epoch
                        "epoch_rng": epoch_rng,
                        "rng": rng_states(),
                        "window": saved_window,
                        "eval_metrics": eval_metrics,
                        "last_loss": last_loss,
                        "train_seconds": train_seconds,
                        "train_pairs_done": train_pairs_done,
                        "config": config.to_dict(),
                    },
                    resume_path,
                )

    if not evaluating_rank:
        return {}
    if not eval_metrics:
        eval_metrics = evaluate(step)
    model_state = full_state_dicts(raw_model)[0] if fsdp else None
    if not master_process:
        return {}
    final = {
        "train_pairs": len(train_set),
        "pairs_trained": train_pairs_done,
        "steps": step,
        "epochs": config.epochs,
        "train_loss": last_loss,
        "train_seconds": train_seconds,
        "pairs_per_second": train_pairs_done / train_seconds if train_seconds else None,
        "dropped_pairs": 0,  # never: long prompts are cut from the left instead
        "prompt_truncated_pairs": train_set.prompt_cut + eval_set.prompt_cut,
        "response_truncated_pairs": train_set.response_cut + eval_set.response_cut,
        "device": device.type,
        "precision": "bf16" if bf16 else "fp32",
        **eval_metrics,
    }
    progress(step, total_steps, "saving")
    summary = data_summary(train_pairs, eval_pairs)
    save_reward_model(raw_model, tokenizer, config, final, Path(output_dir), summary, data_description, model_state)
    return final


def tokenizer_as_trained(tokenizer, max_length: int):
    """The tokenizer set up so that plain transformers calls build the input the model was trained on.

    The transcript becomes its chat template (unless the backbone has its own), and `truncation=True` cuts at
    `max_length` from the left: the oldest prompt tokens go first, as in training.
    """
    if not has_own_chat_template(tokenizer):
        tokenizer.chat_template = TRANSCRIPT_CHAT_TEMPLATE
    tokenizer.model_max_length = max_length
    tokenizer.truncation_side = "left"
    # save_pretrained writes init_kwargs, and not every tokenizer class copies these attributes back into them.
    tokenizer.init_kwargs.update(model_max_length=max_length, truncation_side="left")
    return tokenizer


def save_reward_model(
    model,
    tokenizer,
    config: RewardTrainConfig,
    metrics: dict,
    output_dir: Path,
    summary: dict | None = None,
    data_description: dict | None = None,
    state_dict: dict | None = None,
) -> None:
    """Write the model folder; `state_dict`: the full weights when `model` is sharded (FSDP)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, state_dict=state_dict)
    tokenizer_as_trained(tokenizer, config.max_length).save_pretrained(output_dir)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (output_dir / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))
    write_model_card(output_dir, tokenizer, config, metrics, summary or {}, data_description)
