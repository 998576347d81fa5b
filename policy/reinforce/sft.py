"""Supervised fine-tuning on dialogues with the loss on assistant tokens only (the lecture's multi-turn SFT)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from rlhf.checkpoint import (
    checkpoint_due,
    load_resume_checkpoint,
    restore_rng_states,
    rng_states,
    save_resume_checkpoint,
)
from rlhf.devices import autocast_for
from rlhf.distributed import distributed_context, wrap_ddp
from rlhf.prompts import check_messages, plain_dialogue
from rlhf.training import TrainingStopped

from .config import SFTConfig
from .loading import has_chat_template, load_policy
from .lora import load_trainable_state_dict, make_trainable_from, trainable_parameters, trainable_state_dict
from .train import save_model_dir, seed_everything

IGNORE_INDEX = -100


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _assistant_spans(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The whole dialogue as text and the character span of every assistant turn (content + end-of-turn token)."""
    spans = []
    if has_chat_template(tokenizer):
        text = _render(tokenizer, messages, add_generation_prompt=False)
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            # Where the turn starts: the template's rendering of everything before it plus the assistant header.
            start = len(_render(tokenizer, messages[:index], add_generation_prompt=True))
            through = _render(tokenizer, messages[: index + 1], add_generation_prompt=False)
            if not text.startswith(through):
                raise ValueError("the chat template does not render a dialogue as a prefix of its continuation")
            # Trailing whitespace after the end-of-turn token is template glue, not something the model says.
            spans.append((start, len(through.rstrip())))
        return text, spans
    return plain_dialogue(messages, eos=tokenizer.eos_token or "")


def sft_label_mask(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict], last_turn_only: bool = False
) -> tuple[list[int], list[int]]:
    """input_ids of the dialogue and labels that are -100 except on the tokens of every assistant turn (SFT), or of
    the last one only (`last_turn_only`: the answer a preference pair compares, its prompt's turns masked; DPO)."""
    check_messages(messages, allow_empty=True)
    if not any(message["role"] == "assistant" for message in messages):
        raise ValueError("a dialogue needs at least one assistant message to learn from")
    text, spans = _assistant_spans(tokenizer, messages)
    if last_turn_only:
        spans = spans[-1:]
    encoded = tokenizer(
        text,
        add_special_tokens=not has_chat_template(tokenizer),
        return_offsets_mapping=True,
        verbose=False,  # a dialogue over the model's maximum is cut to config.max_length by the caller
    )
    input_ids = list(encoded["input_ids"])
    labels = [IGNORE_INDEX] * len(input_ids)
    for position, (start, end) in enumerate(encoded["offset_mapping"]):
        if end <= start:
            continue  # special tokens the tokenizer added itself
        if any(span_start <= start < span_end for span_start, span_end in spans):
            labels[position] = input_ids[position]
    return input_ids, labels


def pad_rows(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """(token ids, labels) rows as one right-padded batch; padding is ignored by the loss and the attention."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (ids, row_labels) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(ids)] = torch.tensor(row_labels)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def _batches(examples: list[tuple[list[int], list[int]]], size: int, pad_id: int) -> list[dict[str, torch.Tensor]]:
    return [pad_rows(examples[start : start + size], pad_id) for start in range(0, len(examples), size)]


def train_sft(
    base_path: str | os.PathLike,
    dialogues: list[list[dict]],
    config: SFTConfig,
    output_dir: str | os.PathLike,
    on_log: Callable[[int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    resume_path: str | os.PathLike | None = None,
) -> dict:
    """Fine-tune base_path on dialogues; model and tokenizer go to output_dir/final (loadable by from_pretrained).

    `on_progress(step, total_steps, phase)` is told of every step and phase ("loading", "tokenizing", "training",
    "saving"), and must be cheap. With `resume_path`, saves a resumable checkpoint there every
    `config.checkpoint_every` steps and continues from it when it exists, as an uninterrupted run would.

    Started by torchrun (policy.reinforce.sft_launch), every rank shuffles the dialogues alike and trains on its
    contiguous slice of each batch with DDP; each rank's loss is its tokens' summed loss over the whole batch's
    assistant tokens, so the ranks' losses add up to the 1-process batch loss (summed for the logs). Rank 0 alone
    reports, checkpoints and saves; the other ranks return {}.
    """
    if not dialogues:
        raise ValueError("no dialogues to train on")

    def progress(step: int, total: int, phase: str) -> None:
        if on_progress is not None:
            on_progress(step, total, phase)

    progress(0, 0, "loading")
    ctx = distributed_context()
    seed_everything(config.seed)
    model, tokenizer = load_policy(base_path, device=ctx.device, dtype=torch.float32)
    model = make_trainable_from(model, config)  # every weight, LoRA adapters or the top blocks
    device = ctx.device
    progress(0, 0, "tokenizing")
    examples = []
    for index, messages in enumerate(dialogues):
        try:
            ids, labels = sft_label_mask(tokenizer, messages)
        except ValueError as error:
            raise ValueError(f"dialogue {index}: {error}") from None
        ids, labels = ids[: config.max_length], labels[: config.max_length]
        if all(label == IGNORE_INDEX for label in labels):
            raise ValueError(f"dialogue {index}: no assistant token within max_length={config.max_length}")
        examples.append((ids, labels))
    trained = trainable_parameters(model)
    optimizer = torch.optim.AdamW(trained, lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = random.Random(config.seed)
    steps_per_epoch = -(-len(examples) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    model.train()
    step, losses, started = 0, [], time.monotonic()
    start_epoch, start_batch = 1, 0
    resume = load_resume_checkpoint(resume_path)
    if resume is not None:
        load_trainable_state_dict(model, resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        step, losses, start_epoch, start_batch = resume["step"], resume["losses"], resume["epoch"], resume["batch"]
        rng.setstate(resume["epoch_rng"])  # the epoch's order is shuffled again from where it was shuffled
        restore_rng_states(resume["rng"])
    trained_model = wrap_ddp(model, ctx)
    progress(step, total_steps, "training")
    for epoch in range(start_epoch, config.epochs + 1):
        epoch_rng = rng.getstate()
        order = examples[:]
        rng.shuffle(order)
        for index, batch in enumerate(_batches(order, config.batch_size, tokenizer.pad_token_id)):
            if epoch == start_epoch and index < start_batch:
                continue  # trained before the run was resumed
            if should_stop is not None and should_stop():
                raise TrainingStopped(f"stopped at step {step} of {total_steps}")
            step += 1
            # The model shifts labels by one itself: the batch's loss is the mean over its assistant tokens after
            # the first position. Each rank sums over its rows and divides by the whole batch's count.
            batch_tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            rows = ctx.shard(list(range(len(batch["input_ids"]))))
            # A rank without rows (a batch smaller than the world) still joins the all-reduce, at weight 0.
            share = {key: value[rows or [0]].to(device) for key, value in batch.items()}
            width = int(share["attention_mask"].sum(dim=1).max())
            share = {key: value[:, :width] for key, value in share.items()}  # this slice's own padding
            with autocast_for(device):
                loss = trained_model(**share, num_items_in_batch=batch_tokens).loss * (1.0 if rows else 0.0)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages the ranks' gradients; scaling by the world size makes that their sum.
            (loss * ctx.world_size).backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trained, config.max_grad_norm)
            optimizer.step()
            losses.append(ctx.all_reduce_sum([loss.item()])[0])
            progress(step, total_steps, "training")
            if on_log is not None and ctx.master_process and (step % config.log_every == 0 or step == total_steps):
                elapsed = time.monotonic() - started
                on_log(
                    step,
                    {
                        "step": step,
                        "total_steps": total_steps,
                        "epoch": epoch,
                        "loss": losses[-1],
                        "grad_norm": float(grad_norm),
                        "elapsed_s": elapsed,
                        "eta_s": elapsed / step * (total_steps - step),
                    },
                )
            if ctx.master_process and checkpoint_due(step, total_steps, config.checkpoint_every, resume_path):
                save_resume_checkpoint(
                    {
                        "model": trainable_state_dict(model),
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "epoch": epoch,
                        "batch": index + 1,
                        "epoch_rng": epoch_rng,
                        "rng": rng_states(),
                        "losses": losses,
                        "config": config.to_dict(),
                    },
                    resume_path,
                )
    if not ctx.master_process:
        return {}
    model.eval()
    progress(step, total_steps, "saving")
    model_path = save_model_dir(
        model, tokenizer, Path(output_dir) / "final", {"config": config.to_dict(), "base_path": str(base_path)}
    )
    return {
        "steps": step,
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "examples": len(examples),
        "elapsed_s": time.monotonic() - started,
        "model_path": model_path,
    }
