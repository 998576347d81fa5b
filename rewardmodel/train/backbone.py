"""Where the default backbone lives, and loading any backbone as a one-output reward model."""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def pick_device(requested: str = "") -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_tokenizer(backbone: str):
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    if tokenizer.pad_token is None:
        # Generic causal LMs ship without a pad token; EOS is the usual stand-in (padding is masked anyway).
        if tokenizer.eos_token is None:
            raise ValueError(f"backbone {backbone!r}: its tokenizer has neither a pad token nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_reward_backbone(backbone: str, tokenizer) -> torch.nn.Module:
    """The backbone with a fresh one-output head (num_labels=1: the reward), fp32 master weights."""
    model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1, dtype=torch.float32)
    # Sequence-classification heads of causal LMs find the last real token through pad_token_id.
    model.config.pad_token_id = tokenizer.pad_token_id
    return model
