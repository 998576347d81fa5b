"""SFT warm start: the loss sees every assistant turn and nothing else (the lecture's multi-turn SFT slides)."""

import pytest
from transformers import AutoModelForCausalLM

from policy.reinforce import SFTConfig, TrainingStopped, sft_label_mask, train_sft
from policy.reinforce.loading import load_policy

DIALOGUE = [
    {"role": "system", "content": "e"},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello sure"},
    {"role": "user", "content": "a b"},
    {"role": "assistant", "content": "ok c"},
]


def _labelled(tokenizer, messages) -> tuple[list[str], list[str]]:
    input_ids, labels = sft_label_mask(tokenizer, messages)
    assert len(input_ids) == len(labels)
    tokens = tokenizer.convert_ids_to_tokens(input_ids)
    return tokens, [token for token, label in zip(tokens, labels, strict=True) if label != -100]


def test_label_mask_covers_exactly_every_assistant_turn_with_chat_template(tiny_chat_policy):
    _, tokenizer = load_policy(tiny_chat_policy)
    tokens, labelled = _labelled(tokenizer, DIALOGUE)
    # Content and end-of-turn token of both assistant turns; system, user turns and role headers are masked.
    assert labelled == ["hello", "sure", "<|im_end|>", "ok", "c", "<|im_end|>"]
    assert tokens.count("<|im_end|>") == 5


def test_label_mask_with_plain_format_when_tokenizer_has_no_template(tiny_policy):
    _, tokenizer = load_policy(tiny_policy)
    tokens, labelled = _labelled(tokenizer, DIALOGUE)
    assert labelled == ["hello", "sure", "<eos>", "ok", "c", "<eos>"]
    assert tokens[:4] == ["e", "Human:", "hi", "Assistant:"]


def test_dialogue_without_assistant_turn_is_refused_with_its_index(tiny_chat_policy, tmp_path):
    bad = [DIALOGUE, [{"role": "user", "content": "hi"}]]
    with pytest.raises(ValueError, match="dialogue 1: a dialogue needs at least one assistant message"):
        train_sft(tiny_chat_policy, bad, SFTConfig(), tmp_path)


def test_train_sft_lowers_loss_and_saves_a_loadable_model(tiny_chat_policy, tmp_path):
    logs = []
    config = SFTConfig(epochs=15, learning_rate=1e-2, batch_size=2, seed=0)
    progress = []
    result = train_sft(
        tiny_chat_policy,
        [DIALOGUE] * 4,
        config,
        tmp_path,
        on_log=lambda step, m: logs.append(m),
        on_progress=lambda *report: progress.append(report),
    )
    assert result["steps"] == 30 and logs[-1]["step"] == 30 and logs[-1]["total_steps"] == 30
    assert progress[:2] == [(0, 0, "loading"), (0, 0, "tokenizing")]
    assert progress[2:-1] == [(step, 30, "training") for step in range(31)]  # every step
    assert progress[-1] == (30, 30, "saving")
    assert result["final_loss"] < result["first_loss"] / 4
    model = AutoModelForCausalLM.from_pretrained(result["model_path"])
    assert model.config.vocab_size == 18


def test_train_sft_should_stop_raises(tiny_chat_policy, tmp_path):
    with pytest.raises(TrainingStopped):
        train_sft(tiny_chat_policy, [DIALOGUE] * 4, SFTConfig(batch_size=1), tmp_path, should_stop=lambda: True)
    assert not (tmp_path / "final").exists()
