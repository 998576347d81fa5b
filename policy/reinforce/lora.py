"""Cheaper policy training: LoRA adapters (peft) or only the top transformer blocks, and the frozen reference model
that both get without a second copy of the frozen weights.

Plain PyTorch/peft, no Django. A trainer calls `make_trainable(model, ...)` once after loading, builds its optimizer
over `trainable_parameters(model)`, takes its KL reference from `reference_policy(model)`, saves with
`save_policy(model, folder)` (merged weights that `AutoModelForCausalLM.from_pretrained` loads, the adapter in
folder/adapter) and resumes with `trainable_state_dict` / `load_trainable_state_dict`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

ALL_LINEAR = "all-linear"
ADAPTER_DIRNAME = "adapter"
_MODULE_NAME = re.compile(r"^[A-Za-z_][\w.]*$")


class TrainableError(ValueError):
    """Settings that do not fit the model (no such module, more blocks than it has); `name` is the option's."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def parse_target_modules(text: str) -> str | list[str]:
    """ "all-linear" (every linear layer but the output head) or comma-separated module names ("q_proj,v_proj")."""
    text = text.strip()
    if text == ALL_LINEAR:
        return ALL_LINEAR
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if not _MODULE_NAME.match(name)]
    if not names or bad:
        raise TrainableError(
            "lora_target_modules",
            f"lora_target_modules must be {ALL_LINEAR} or module names separated by commas, got {text!r}.",
        )
    return names


def is_lora(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def apply_lora(
    model: nn.Module, rank: int, alpha: float, dropout: float = 0.0, target_modules: str = ALL_LINEAR
) -> nn.Module:
    """The model with LoRA adapters on target_modules, only the adapters trainable (a peft PeftModel)."""
    from peft import LoraConfig, get_peft_model

    targets = parse_target_modules(target_modules)
    if targets != ALL_LINEAR:
        present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [name for name in targets if name.rsplit(".", 1)[-1] not in present]
        if missing:
            raise TrainableError(
                "lora_target_modules",
                f"lora_target_modules: the model has no module named {', '.join(missing)}.",
            )
    lora = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none", task_type="CAUSAL_LM"
    )
    return get_peft_model(model, lora)


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's stack of transformer blocks (the ModuleList as long as config.num_hidden_layers)."""
    count = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise TrainableError("trainable_top_blocks", "trainable_top_blocks: cannot find this model's transformer blocks.")


def freeze_below_top_blocks(model: nn.Module, blocks: int) -> nn.Module:
    """Only the top `blocks` transformer blocks and the final norm stay trainable, so the backward pass stops there.

    The embeddings stay frozen even when the output head shares them (tied): training the head would send the
    backward pass through every block again.
    """
    stack = transformer_blocks(model)
    if not 1 <= blocks <= len(stack):
        raise TrainableError(
            "trainable_top_blocks", f"trainable_top_blocks must be in [1, {len(stack)}] for this model, got {blocks}."
        )
    model.requires_grad_(False)
    stack[len(stack) - blocks :].requires_grad_(True)
    norm = getattr(getattr(model, "model", None), "norm", None)  # Llama/Qwen/Mistral's final norm
    if isinstance(norm, nn.Module):
        norm.requires_grad_(True)
    return model


def make_trainable(
    model: nn.Module,
    *,
    lora_rank: int = 0,
    lora_alpha: float = 16.0,
    lora_dropout: float = 0.0,
    lora_target_modules: str = ALL_LINEAR,
    trainable_top_blocks: int = 0,
) -> nn.Module:
    """The model to train: with LoRA adapters (lora_rank > 0), its top blocks only, or all of it (the defaults)."""
    if lora_rank and trainable_top_blocks:
        raise TrainableError("trainable_top_blocks", "Choose LoRA (lora_rank > 0) or trainable_top_blocks, not both.")
    if lora_rank:
        return apply_lora(model, lora_rank, lora_alpha, lora_dropout, lora_target_modules)
    if trainable_top_blocks:
        return freeze_below_top_blocks(model, trainable_top_blocks)
    return model


def make_trainable_from(model: nn.Module, config: Any) -> nn.Module:
    """make_trainable with a config's options (those it lacks keep their defaults)."""
    names = ("lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules", "trainable_top_blocks")
    return make_trainable(model, **{name: getattr(config, name) for name in names if hasattr(config, name)})


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


class _AdaptersOff:
    """The base model under a PeftModel, as a model object: every call runs with the adapters switched off."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.model.disable_adapter():
            return self.model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


@contextmanager
def reference_context(model: nn.Module) -> Iterator[None]:
    """Within it a LoRA model computes as its base (the reference); other models are unchanged."""
    with model.disable_adapter() if is_lora(model) else nullcontext():
        yield


def reference_policy(model: nn.Module) -> Any:
    """The frozen starting policy for the KL term, without copying what training never changes.

    LoRA: the same model with its adapters switched off (no copy at all). Top blocks: a copy that shares every
    frozen tensor, so only the trained blocks are duplicated. Full fine-tuning: a whole copy.
    """
    if is_lora(model):
        return _AdaptersOff(model)
    shared = {id(parameter): parameter for parameter in model.parameters() if not parameter.requires_grad}
    reference = copy.deepcopy(model, memo=shared)
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference.eval()


@torch.no_grad()
def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A LoRA model's weights as the plain model's: base + adapter delta in each adapted layer, no adapter keys."""
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    state = {
        name.replace(".base_layer.", "."): tensor for name, tensor in base.state_dict().items() if ".lora_" not in name
    }
    for name, module in base.named_modules():
        if isinstance(module, LoraLayer):
            weight = module.get_base_layer().weight
            delta = sum(module.get_delta_weight(adapter) for adapter in module.active_adapters)
            state[f"{name}.weight"] = (weight + delta).to(weight.dtype)
    return state


def save_policy(model: nn.Module, folder: Path) -> None:
    """save_pretrained of the plain model into folder; a LoRA model's merged weights, its adapter in folder/adapter."""
    if not is_lora(model):
        model.save_pretrained(folder)
        return
    model.get_base_model().save_pretrained(folder, state_dict=merged_state_dict(model))
    model.save_pretrained(folder / ADAPTER_DIRNAME)


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a resumable checkpoint needs of the model: all of it, or only the trained tensors when some are frozen."""
    parameters = dict(model.named_parameters())
    if all(parameter.requires_grad for parameter in parameters.values()):
        return model.state_dict()
    return {name: parameter.detach() for name, parameter in parameters.items() if parameter.requires_grad}


def load_trainable_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load what trainable_state_dict saved; refuses a checkpoint of other LoRA or top-block settings."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    if unexpected or trained & set(missing):
        raise ValueError(
            "the resumable checkpoint does not match the model's trainable weights "
            "(saved with other LoRA or trainable_top_blocks settings?)"
        )
