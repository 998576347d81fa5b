"""The model card (README.md) written into every trained reward-model folder.

It says exactly how the app turns (prompt, response) into model input, and gives a scoring snippet that uses only
transformers and gives the same rewards as the app's score box (tests/rewardmodel/test_model_card.py runs it).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from rewardmodel.train.config import RewardTrainConfig
from rewardmodel.train.data import PreferencePair, has_own_chat_template

# The snippet's stand-in for the folder; users replace it, the test replaces it with the folder it trained.
MODEL_FOLDER_PLACEHOLDER = "path/to/this/folder"

CARD_METRICS = (
    ("eval_accuracy", "Held-out preference accuracy"),
    ("eval_loss", "Held-out loss"),
    ("eval_pairs", "Held-out pairs"),
    ("eval_accuracy_clear", "Held-out accuracy, clear preferences"),
    ("eval_accuracy_slight", "Held-out accuracy, slight preferences"),
    ("train_loss", "Final training loss"),
    ("train_pairs", "Training pairs"),
    ("steps", "Optimizer steps"),
    ("prompt_truncated_pairs", "Pairs whose prompt was cut to fit"),
    ("response_truncated_pairs", "Pairs with a response longer than the maximum on its own"),
    ("device", "Device"),
    ("precision", "Precision"),
)


def scoring_snippet(tokenizer) -> str:
    """Ten lines of plain transformers that reproduce the app's reward for (messages, response)."""
    # Own templates (Qwen, Llama …) write their special tokens into the text; our transcript leaves them to the
    # tokenizer ([CLS] … [SEP]), which keeps them when it truncates.
    special = ", add_special_tokens=False" if has_own_chat_template(tokenizer) else ""
    return f"""import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{MODEL_FOLDER_PLACEHOLDER}")
model = AutoModelForSequenceClassification.from_pretrained("{MODEL_FOLDER_PLACEHOLDER}").eval()

def reward(messages: list[dict], response: str) -> float:
    text = tokenizer.apply_chat_template(messages + [{{"role": "assistant", "content": response}}], tokenize=False)
    inputs = tokenizer(text, truncation=True, return_tensors="pt"{special})
    with torch.no_grad():
        return model(**inputs).logits[0, 0].item()

print(reward([{{"role": "user", "content": "What colour is the sky?"}}], "Blue."))
"""


def data_summary(train_pairs: list[PreferencePair], eval_pairs: list[PreferencePair]) -> dict:
    pairs = train_pairs + eval_pairs
    levels = Counter(pair.level or "unknown" for pair in pairs)
    return {
        "pairs": len(pairs),
        "train_pairs": len(train_pairs),
        "eval_pairs": len(eval_pairs),
        "prompt_groups": len({pair.group_id() for pair in pairs}),
        "levels": ", ".join(f"{level} {count}" for level, count in sorted(levels.items())),
    }


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else str(value)


def model_card(
    tokenizer, config: RewardTrainConfig, metrics: dict, summary: dict, data_description: dict | None = None
) -> str:
    own_template = has_own_chat_template(tokenizer)
    if own_template:
        input_format = (
            "The backbone's own chat template (saved with the tokenizer) renders the prompt's messages followed by "
            "the response as one assistant message; the template writes its own special tokens, so the text is "
            "tokenized with `add_special_tokens=False`."
        )
    else:
        input_format = (
            "A plain transcript, HH-RLHF style: each message as `\\n\\nHuman: …`, `\\n\\nAssistant: …` or "
            "`\\n\\nSystem: …`, the response last as `\\n\\nAssistant: <response>`; the tokenizer adds its special "
            "tokens around it (`[CLS] … [SEP]` for BERT). This transcript is saved as the tokenizer's chat template, "
            "so `tokenizer.apply_chat_template(messages + [response message], tokenize=False)` gives the exact text."
        )
    example = '[{"role": "user", "content": "What colour is the sky?"}], "Blue."'
    data_lines = [f"- {key.replace('_', ' ').capitalize()}: {_format_value(value)}" for key, value in summary.items()]
    for key, value in (data_description or {}).items():
        data_lines.append(f"- {key.replace('_', ' ').capitalize()}: {_format_value(value)}")
    metric_lines = [
        f"| {label} | {_format_value(metrics[key])} |" for key, label in CARD_METRICS if metrics.get(key) is not None
    ]
    return "\n".join(
        [
            "---",
            "library_name: transformers",
            "pipeline_tag: text-classification",
            "tags: [reward-model, rlhf, arbiter]",
            "---",
            "",
            "# Reward model trained with Arbiter",
            "",
            "A sequence-classification model with one output: the reward of a response to a prompt (higher is "
            "better). Trained on human preference pairs with the pairwise loss "
            "`-log σ(r(x, y_chosen) − r(x, y_rejected) − m)`. Only differences between rewards of responses to the "
            "same prompt mean anything; the scale is arbitrary.",
            "",
            "## Input format",
            "",
            input_format,
            "",
            f"At most {config.max_length} tokens. A longer input loses the **oldest prompt tokens** "
            "(the tokenizer is saved with `truncation_side='left'` and `model_max_length="
            f"{config.max_length}`, so `truncation=True` does the same); the response is never cut while it fits "
            "on its own. (A response longer than the maximum by itself keeps its start in the app and its end with "
            "the tokenizer's left truncation.)",
            "",
            "## Scoring",
            "",
            f"Reproduces the reward Arbiter's score box shows (to 1e-4), e.g. `reward({example})`; replace the path "
            "with this folder's:",
            "",
            "```python",
            scoring_snippet(tokenizer).rstrip("\n"),
            "```",
            "",
            "## Training data",
            "",
            *data_lines,
            "",
            "## Metrics",
            "",
            "| Metric | Value |",
            "|---|---|",
            *metric_lines,
            "",
            "All figures are in `metrics.json`.",
            "",
            "## Configuration",
            "",
            "```json",
            json.dumps(config.to_dict(), indent=2),
            "```",
            "",
        ]
    )


def write_model_card(
    output_dir: Path,
    tokenizer,
    config: RewardTrainConfig,
    metrics: dict,
    summary: dict,
    data_description: dict | None = None,
) -> None:
    (output_dir / "README.md").write_text(model_card(tokenizer, config, metrics, summary, data_description))
