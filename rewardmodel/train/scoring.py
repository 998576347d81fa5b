"""Scoring (prompt, response) with a trained reward model, and preference accuracy on pairs with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from rewardmodel.train.backbone import compute_last_layer_for_first_token_only, load_tokenizer
from rewardmodel.train.data import LEVELS, PreferencePair, encode_texts
from rewardmodel.train.loss import pairwise_loss
from rlhf.devices import autocast_for, pick_device


def collate(sequences: list[list[int]], pad_token_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence of this batch only (dynamic padding)."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


def rewards_of(model, batch: dict[str, torch.Tensor], bf16: bool | None = None) -> torch.Tensor:
    with autocast_for(batch["input_ids"].device, bf16):
        logits = model(**batch).logits
    return logits.squeeze(-1).float()


@torch.inference_mode()
def score_sequences(
    model, sequences: list[list[int]], pad_token_id: int, batch_size: int, bf16: bool | None = None
) -> list[float]:
    """Rewards of token-id sequences, batched by length (little padding), in the input order."""
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    scores = [0.0] * len(sequences)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        rewards = rewards_of(model, collate([sequences[i] for i in chunk], pad_token_id, device), bf16)
        for index, reward in zip(chunk, rewards.tolist(), strict=True):
            scores[index] = reward
    return scores


def preference_metrics(
    r_chosen: list[float], r_rejected: list[float], levels: list[str], weights: list[float] | None = None
) -> dict:
    """Loss, accuracy (overall and per rating level), mean margin, pair counts. A tie counts as wrong."""
    count = len(r_chosen)
    metrics: dict = {"pairs": count}
    if count == 0:
        metrics.update(loss=None, accuracy=None, mean_margin=None)
    else:
        chosen, rejected = torch.tensor(r_chosen), torch.tensor(r_rejected)
        weight = torch.tensor(weights) if weights is not None else None
        metrics["loss"] = pairwise_loss(chosen, rejected, weight=weight).item()
        metrics["accuracy"] = (chosen > rejected).float().mean().item()
        metrics["mean_margin"] = (chosen - rejected).mean().item()
    for level in LEVELS:
        at_level = [c > r for c, r, lv in zip(r_chosen, r_rejected, levels, strict=True) if lv == level]
        metrics[f"pairs_{level}"] = len(at_level)
        metrics[f"accuracy_{level}"] = sum(at_level) / len(at_level) if at_level else None
    return metrics


class RewardScorer:
    """A trained reward model with its tokenizer and the text format it was trained on."""

    def __init__(self, model, tokenizer, max_length: int):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length

    def score(self, prompt: list[dict], response: str) -> float:
        return self.score_batch([prompt], [response])[0]

    def score_batch(self, prompts: list[list[dict]], responses: list[str], batch_size: int = 32) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        sequences, _, _ = encode_texts(self.tokenizer, prompts, responses, self.max_length)
        return score_sequences(self.model, sequences, self.tokenizer.pad_token_id, batch_size)


def load_reward_model(path: str, device: str | None = None) -> RewardScorer:
    """Load a directory written by train_reward_model (or any one-output sequence-classification model)."""
    folder = Path(path)
    tokenizer = load_tokenizer(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32)
    if model.config.num_labels != 1:
        raise ValueError(f"{path}: a reward model has one output, this one has {model.config.num_labels}")
    model.config.pad_token_id = tokenizer.pad_token_id
    compute_last_layer_for_first_token_only(model)
    max_length = min(tokenizer.model_max_length, 512)
    config_file = folder / "train_config.json"
    if config_file.is_file():
        max_length = json.loads(config_file.read_text())["max_length"]
    return RewardScorer(model.to(pick_device(device or "")), tokenizer, max_length)


def evaluate_pairs(scorer: RewardScorer, pairs: list[PreferencePair], batch_size: int = 32) -> dict:
    """Preference accuracy of `scorer` on pairs with known answers (chosen should score higher)."""
    prompts = [pair.prompt for pair in pairs]
    r_chosen = scorer.score_batch(prompts, [pair.chosen for pair in pairs], batch_size)
    r_rejected = scorer.score_batch(prompts, [pair.rejected for pair in pairs], batch_size)
    return preference_metrics(r_chosen, r_rejected, [p.level for p in pairs], [p.weight for p in pairs])
