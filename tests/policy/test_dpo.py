"""DPO / IPO trainer: the loss against hand-computed values, the masking, learning on tiny pairs, resume."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from policy.reinforce import DPOConfig, TrainingStopped, dpo_loss, train_dpo
from policy.reinforce.dpo import collate, encode_answer, sequence_logps
from policy.reinforce.loading import load_policy
from rewardmodel.train.data import PreferencePair, pairs_from_ranking
from rlhf.options import OptionError

PROMPT = [
    {"role": "system", "content": "e"},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello sure"},
    {"role": "user", "content": "a b"},
]


def _sigmoid_loss(h: float, margin: float = 0.0) -> float:
    return -math.log(1 / (1 + math.exp(-(h - margin))))


def test_sigmoid_loss_matches_hand_computed_value_with_weights_and_margin():
    # Pair 1: (−1 − −2) − (−3 − −2) = 2, β = 0.5 → β·h = 1; pair 2: (−4 − −4) − (−1 − −2) = −1 → β·h = −0.5.
    policy_chosen, reference_chosen = torch.tensor([-1.0, -4.0]), torch.tensor([-2.0, -4.0])
    policy_rejected, reference_rejected = torch.tensor([-3.0, -1.0]), torch.tensor([-2.0, -2.0])
    weight, margin = torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0])
    loss, rewards = dpo_loss(
        policy_chosen, policy_rejected, reference_chosen, reference_rejected, 0.5, "sigmoid", weight, margin
    )
    expected = (1 * _sigmoid_loss(1.0, 1.0) + 3 * _sigmoid_loss(-0.5)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert rewards["chosen_reward"].tolist() == [0.5, 0.0]
    assert rewards["rejected_reward"].tolist() == [-0.5, 0.5]
    unweighted, _ = dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, 0.5)
    assert unweighted.item() == pytest.approx((_sigmoid_loss(1.0) + _sigmoid_loss(-0.5)) / 2, rel=1e-6)


def test_ipo_loss_matches_hand_computed_value_with_weights():
    # Gaps h = 2 and −1; β = 0.25 → target 1/(2β) = 2: losses 0 and 9, weighted (1·0 + 3·9) / 4.
    loss, _ = dpo_loss(
        torch.tensor([-1.0, -4.0]),
        torch.tensor([-3.0, -1.0]),
        torch.tensor([-2.0, -4.0]),
        torch.tensor([-2.0, -2.0]),
        0.25,
        "ipo",
        torch.tensor([1.0, 3.0]),
    )
    assert loss.item() == pytest.approx(27 / 4)


def test_only_the_answer_tokens_count(tiny_chat_policy):
    model, tokenizer = load_policy(tiny_chat_policy)
    config = DPOConfig()
    ids, labels = encode_answer(tokenizer, PROMPT, "ok c", config)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    # The earlier assistant turn of the prompt ("hello sure") is the prompt's: only the compared answer is labelled.
    assert [t for t, label in zip(tokens, labels, strict=True) if label != -100] == ["ok", "c", "<|im_end|>"]
    assert "hello" in tokens
    # The summed log-probability is over exactly those tokens: changing a prompt token's label changes nothing.
    encoded = [((ids, labels), (ids, labels))]
    batch = collate(encoded, [0], tokenizer.pad_token_id)
    with torch.no_grad():
        logps = sequence_logps(model, batch)
        logits = model(input_ids=batch["input_ids"]).logits[0, :-1].log_softmax(-1)
    targets = batch["input_ids"][0, 1:]
    by_hand = sum(logits[i, targets[i]].item() for i in range(len(targets)) if labels[i + 1] != -100)
    assert logps[0].item() == pytest.approx(by_hand, abs=1e-4)
    assert logps[0].item() == pytest.approx(logps[1].item())


def test_long_prompt_keeps_its_end_and_the_answer_fits(tiny_chat_policy):
    _, tokenizer = load_policy(tiny_chat_policy)
    config = DPOConfig(max_length=12, max_prompt_length=6)
    ids, labels = encode_answer(tokenizer, PROMPT, "ok c", config)
    assert len(ids) <= 12
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[-3:] == ["ok", "c", "<|im_end|>"] and "hello" not in tokens


def test_config_refuses_ipo_with_margin_and_several_processes():
    with pytest.raises(OptionError, match="IPO has no margin"):
        DPOConfig(loss_type="ipo", margin="level")
    with pytest.raises(OptionError, match="processes: DPO trains in one process"):
        DPOConfig(processes=2)
    with pytest.raises(OptionError, match="beta must be in"):
        DPOConfig(beta=0)


def _pairs() -> list[PreferencePair]:
    # The chosen answers say "hello"/"sure"; the rejected ones "a"/"b". Two prompts held out by group.
    prompts = ["hi", "hi ok", "c d", "e a", "b e", "sure hello"]
    pairs = []
    for index, text in enumerate(prompts):
        messages = [{"role": "user", "content": text}]
        pairs.append(PreferencePair(messages, "hello sure", "a b", level="clear" if index % 2 else "slight"))
    # A ranking's weighted pairs (1/3 each) join as the reward model takes them.
    pairs.extend(pairs_from_ranking([{"role": "user", "content": "d"}], ["sure ok", "c", "a e"]))
    return pairs


def test_dpo_raises_implicit_reward_accuracy_and_saves_a_model_with_card(tiny_chat_policy, tmp_path):
    logs, progress = [], []
    config = DPOConfig(epochs=8, learning_rate=5e-3, batch_size=3, beta=0.5, margin="level", eval_fraction=0.2)
    result = train_dpo(
        tiny_chat_policy,
        _pairs(),
        config,
        tmp_path,
        on_log=lambda step, metrics: logs.append(metrics),
        on_progress=lambda *report: progress.append(report),
    )
    assert logs[0]["accuracy"] <= 0.67  # the reference itself: log-ratios 0, nothing above anything
    assert logs[0]["margin"] == pytest.approx(0.0, abs=1e-5)
    assert logs[-1]["accuracy"] == 1.0 and logs[-1]["margin"] > 1.0
    assert result["final_loss"] < result["first_loss"] / 2
    assert logs[-1]["logps_chosen"] > logs[0]["logps_chosen"]
    assert {"eval_loss", "eval_accuracy", "eval_margin", "eval_logps_chosen", "eval_logps_rejected"} <= set(logs[-1])
    assert result["pairs"] + result["eval_pairs"] == 9 and result["eval_pairs"] >= 1
    assert progress[-1][2] == "saving" and (result["steps"], result["steps"]) == progress[-1][:2]
    model = AutoModelForCausalLM.from_pretrained(result["model_path"])
    assert model.config.vocab_size == 18
    card = (tmp_path / "final" / "README.md").read_text()
    assert "direct preference optimization (DPO, β=0.5)" in card


def test_resumed_run_ends_where_an_uninterrupted_one_does(tiny_chat_policy, tmp_path):
    config = DPOConfig(epochs=2, learning_rate=5e-3, batch_size=2, checkpoint_every=2, eval_fraction=0.0)
    whole = []
    train_dpo(tiny_chat_policy, _pairs(), config, tmp_path / "a", on_log=lambda s, m: whole.append(m["loss"]))
    resume = tmp_path / "b" / "resume.pt"
    first = []
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    with pytest.raises(TrainingStopped):
        train_dpo(
            tiny_chat_policy,
            _pairs(),
            config,
            tmp_path / "b",
            on_log=lambda s, m: first.append((s, m["loss"])),
            should_stop=stop_after_three,
            resume_path=resume,
        )
    rest = []
    train_dpo(
        tiny_chat_policy, _pairs(), config, tmp_path / "b", on_log=lambda s, m: rest.append(m), resume_path=resume
    )
    assert rest[0]["step"] == 3  # checkpoint after step 2: step 3 is trained again
    assert [m["loss"] for m in rest] == pytest.approx(whole[2:], rel=1e-4)
    assert (tmp_path / "b" / "checkpoint-2" / "config.json").is_file()
