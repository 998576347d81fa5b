"""The model card (README.md) written into every policy checkpoint: prompt format and how to generate.

Its snippet builds the prompt exactly as training did (tests/policy/test_model_card.py checks it against
format_prompt) and generates with the sampling settings the run used.
"""

from __future__ import annotations

import json

from transformers import PreTrainedTokenizerBase

from .loading import has_chat_template

MODEL_FOLDER_PLACEHOLDER = "path/to/this/folder"
# Sampling settings a REINFORCE config holds; an SFT checkpoint shows transformers' defaults for them.
GENERATION_KEYS = ("temperature", "top_p", "max_new_tokens", "max_prompt_tokens")


def generation_snippet(tokenizer: PreTrainedTokenizerBase, settings: dict) -> str:
    if has_chat_template(tokenizer):
        prompt_lines = [
            "prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)",
            'inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)  # the template has them',
        ]
    else:
        prompt_lines = [
            'turns = {"user": "Human: {}\\n\\n", "assistant": "Assistant: {}\\n\\n", "system": "{}\\n\\n"}',
            'prompt = "".join(turns[m["role"]].format(m["content"]) for m in messages) + "Assistant:"',
            'inputs = tokenizer(prompt, return_tensors="pt")',
        ]
    temperature = settings.get("temperature", 1.0)
    sampling = "do_sample=False" if temperature == 0 else f"do_sample=True, temperature={temperature}"
    if temperature != 0 and settings.get("top_p", 1.0) != 1.0:
        sampling += f", top_p={settings['top_p']}"
    max_new_tokens = settings.get("max_new_tokens", 128)
    return "\n".join(
        [
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'tokenizer = AutoTokenizer.from_pretrained("{MODEL_FOLDER_PLACEHOLDER}")',
            f'model = AutoModelForCausalLM.from_pretrained("{MODEL_FOLDER_PLACEHOLDER}").eval()',
            'messages = [{"role": "user", "content": "What colour is the sky?"}]',
            *prompt_lines,
            f"output = model.generate(**inputs, {sampling}, max_new_tokens={max_new_tokens})",
            'answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)',
            "print(answer)",
            "",
        ]
    )


def policy_card(tokenizer: PreTrainedTokenizerBase, state: dict) -> str:
    config = state.get("config", {})
    is_reinforce = "kl_coef" in config
    if is_reinforce:
        kind = "REINFORCE against a reward model"
    elif state.get("method") == "dpo":
        loss = "IPO" if config.get("loss_type") == "ipo" else "DPO"
        kind = f"direct preference optimization ({loss}, β={config.get('beta')}) on human preference pairs"
    else:
        kind = "supervised fine-tuning (SFT)"
    if has_chat_template(tokenizer):
        prompt_format = (
            "The tokenizer's chat template (saved in this folder) with `add_generation_prompt=True`; the template "
            "writes its own special tokens, so the text is tokenized with `add_special_tokens=False`. The answer "
            "ends at the template's end-of-turn token (the EOS in `generation_config.json`)."
        )
    else:
        prompt_format = (
            "No chat template: a plain transcript, each user turn as `Human: <text>\\n\\n`, each assistant turn as "
            "`Assistant: <text>\\n\\n`, a system message as `<text>\\n\\n`, then `Assistant:` where the answer "
            "starts; the tokenizer adds its own special tokens (BOS)."
        )
    if is_reinforce:
        settings = {key: config[key] for key in GENERATION_KEYS if key in config}
        settings_lines = [f"- `{key}`: {value}" for key, value in settings.items()]
        settings_lines.append(
            f"- prompts over `max_prompt_tokens` ({settings.get('max_prompt_tokens')}) keep their last tokens"
        )
    else:
        settings = {}
        what = "DPO" if state.get("method") == "dpo" else "SFT"
        settings_lines = [
            f"- {what} samples nothing in training; the snippet uses transformers' defaults (temperature 1)."
        ]
    step = f" after step {state['step']}" if "step" in state else ""
    return "\n".join(
        [
            "---",
            "library_name: transformers",
            "pipeline_tag: text-generation",
            "tags: [rlhf, arbiter]",
            "---",
            "",
            f"# Policy trained with Arbiter: {kind}{step}",
            "",
            f"Started from `{state.get('policy_path') or state.get('base_path', '?')}`.",
            "",
            "## Prompt format",
            "",
            prompt_format,
            "",
            "## Generation settings used in training",
            "",
            *settings_lines,
            "",
            "## Generating",
            "",
            "Replace the path with this folder's:",
            "",
            "```python",
            generation_snippet(tokenizer, settings).rstrip("\n"),
            "```",
            "",
            "## Configuration",
            "",
            "```json",
            json.dumps(config, indent=2, default=str),
            "```",
            "",
        ]
    )
