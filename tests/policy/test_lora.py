"""LoRA and top-block training of the policy (REINFORCE and SFT) on tiny random models: the reference is the base
model, the saved checkpoint is the merged model that from_pretrained loads, frozen weights stay as they were."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from policy.reinforce import ReinforceConfig, SFTConfig, train_reinforce, train_sft
from policy.reinforce.loading import load_policy
from policy.reinforce.lora import apply_lora, freeze_below_top_blocks, reference_policy, save_policy
from policy.reinforce.sampling import make_generator, response_logprobs, rollout_prompts
from rlhf.options import OptionError
from tests.policy.test_reinforce_train import EVAL_PROMPTS, PROMPTS, count_a
from tests.policy.test_resume_train import Killed, killed_at, losses_by_step, same_weights
from tests.policy.test_sft import DIALOGUE


def _rollout(model, tokenizer):
    return rollout_prompts(
        model, tokenizer, PROMPTS[:2], max_new_tokens=6, temperature=1.0, top_p=1.0, max_prompt_tokens=64,
        generator=make_generator(torch.device("cpu"), 1), samples_per_prompt=2,
    )  # fmt: skip


def _logprobs(model, rollout):
    with torch.no_grad():
        return response_logprobs(model, rollout, 1.0) * rollout.response_mask


def test_lora_reference_is_the_base_and_the_saved_model_is_the_merged_policy(tiny_policy, tmp_path):
    base, tokenizer = load_policy(tiny_policy, dtype=torch.float32)
    rollout = _rollout(base, tokenizer)
    base_logprobs = _logprobs(base, rollout)
    policy = apply_lora(load_policy(tiny_policy, dtype=torch.float32)[0], rank=4, alpha=8)
    with torch.no_grad():  # as if trained: adapters that change the output
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    policy_logprobs = _logprobs(policy, rollout)
    assert not torch.allclose(policy_logprobs, base_logprobs, atol=1e-3)
    assert torch.equal(_logprobs(reference_policy(policy), rollout), base_logprobs)

    save_policy(policy, tmp_path / "final")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "final")
    assert not any("lora" in key for key in load_file(tmp_path / "final" / "model.safetensors"))
    assert torch.allclose(_logprobs(merged, rollout), policy_logprobs, atol=1e-5)
    adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_policy), tmp_path / "final/adapter")
    assert torch.allclose(_logprobs(adapter, rollout), policy_logprobs, atol=1e-5)


def test_top_block_reference_shares_the_frozen_weights(tiny_policy):
    policy = freeze_below_top_blocks(load_policy(tiny_policy, dtype=torch.float32)[0], 1)
    reference = reference_policy(policy)
    assert reference.model.layers[0].mlp.down_proj.weight is policy.model.layers[0].mlp.down_proj.weight
    assert reference.model.layers[1].mlp.down_proj.weight is not policy.model.layers[1].mlp.down_proj.weight
    assert not any(parameter.requires_grad for parameter in reference.parameters())
    assert [name for name, p in policy.named_parameters() if p.requires_grad][0].startswith("model.layers.1.")


def _config(**overrides) -> ReinforceConfig:
    settings = dict(
        steps=4, prompts_per_step=2, samples_per_prompt=2, max_new_tokens=5, learning_rate=5e-2,
        eval_every=2, checkpoint_every=2, seed=3,
    )  # fmt: skip
    return ReinforceConfig(**{**settings, **overrides})


def _changed(before: dict, after: dict) -> set[str]:
    return {key for key in before if not torch.equal(before[key], after[key])}


@pytest.mark.parametrize(
    ("options", "frozen_prefixes"),
    [
        ({"lora_rank": 4, "lora_target_modules": "q_proj,v_proj"}, ("model.embed_tokens", "model.layers.0.mlp")),
        ({"trainable_top_blocks": 1}, ("model.embed_tokens", "model.layers.0.")),
    ],
    ids=["lora", "top-block"],
)
def test_reinforce_trains_only_what_is_asked_and_resumes_as_the_uninterrupted_run(
    tiny_policy, tmp_path, options, frozen_prefixes
):
    config = _config(**options)
    whole_logs: list[dict] = []
    whole = train_reinforce(
        tiny_policy, count_a, PROMPTS, EVAL_PROMPTS, config, tmp_path / "whole",
        on_log=lambda step, metrics: whole_logs.append(metrics), resume_path=tmp_path / "whole.resume" / "resume.pt",
    )  # fmt: skip
    assert whole_logs[0]["kl"] == 0.0  # the reference is the starting policy
    assert whole["kl"] != 0.0  # and moved from it (the sampled estimate may be negative)

    before = load_file(f"{tiny_policy}/model.safetensors")
    after = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    assert before.keys() == after.keys()  # loads as the base model does
    changed = _changed(before, after)
    assert changed and not any(key.startswith(frozen_prefixes) for key in changed)
    assert (tmp_path / "whole" / "final" / "adapter").is_dir() == ("lora_rank" in options)

    resume_path = tmp_path / "run.resume" / "resume.pt"
    logs: list[dict] = []

    def on_log(step: int, metrics: dict) -> None:
        logs.append(metrics)
        killed_at(3)(step, metrics)

    with pytest.raises(Killed):
        train_reinforce(
            tiny_policy, count_a, PROMPTS, EVAL_PROMPTS, config, tmp_path / "run", on_log=on_log,
            resume_path=resume_path,
        )  # fmt: skip
    resumed = train_reinforce(
        tiny_policy, count_a, PROMPTS, EVAL_PROMPTS, config, tmp_path / "run",
        on_log=lambda step, metrics: logs.append(metrics), resume_path=resume_path,
    )  # fmt: skip
    assert losses_by_step(logs) == losses_by_step(whole_logs)
    assert resumed["eval_samples"] == whole["eval_samples"]
    assert same_weights(tmp_path / "whole" / "final", tmp_path / "run" / "final")


def test_sft_with_lora_learns_and_saves_a_merged_model(tiny_chat_policy, tmp_path):
    config = SFTConfig(epochs=15, learning_rate=1e-2, batch_size=2, seed=0, lora_rank=8, lora_dropout=0.1)
    result = train_sft(tiny_chat_policy, [DIALOGUE] * 4, config, tmp_path)
    assert result["final_loss"] < result["first_loss"] * 0.85  # (full fine-tuning: / 100; a tiny random model)
    before = load_file(f"{tiny_chat_policy}/model.safetensors")
    after = load_file(tmp_path / "final" / "model.safetensors")
    assert _changed(before, after) and "model.embed_tokens.weight" not in _changed(before, after)
    AutoModelForCausalLM.from_pretrained(result["model_path"])


def test_bad_settings_are_refused_naming_the_option(tiny_policy, tmp_path):
    with pytest.raises(OptionError, match="not both") as refused:
        ReinforceConfig(lora_rank=8, trainable_top_blocks=2)
    assert refused.value.name == "trainable_top_blocks"
    with pytest.raises(OptionError, match="lora_target_modules must be"):
        SFTConfig(lora_rank=8, lora_target_modules="q_proj;rm -rf")
    with pytest.raises(ValueError, match="lora_target_modules: the model has no module named c_attn"):
        train_reinforce(
            tiny_policy, count_a, PROMPTS, EVAL_PROMPTS, _config(lora_rank=4, lora_target_modules="c_attn"), tmp_path
        )
    with pytest.raises(ValueError, match=r"trainable_top_blocks must be in \[1, 2\] for this model, got 3"):
        train_reinforce(tiny_policy, count_a, PROMPTS, EVAL_PROMPTS, _config(trainable_top_blocks=3), tmp_path)
