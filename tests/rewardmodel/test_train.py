"""Reward-model training on a tiny random BERT built in the test (no download): truncation, learning, stopping,
and a model directory that loads with from_pretrained."""

import json
import random

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoModelForSequenceClassification, BertConfig, BertModel, PreTrainedTokenizerFast

from rewardmodel.train import (
    PreferencePair,
    RewardTrainConfig,
    TrainingStopped,
    evaluate_pairs,
    load_reward_model,
    split_by_group,
    train_reward_model,
)
from rewardmodel.train.backbone import load_reward_backbone, load_tokenizer
from rewardmodel.train.data import encode_pairs
from rewardmodel.train.scoring import collate

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
WORDS = [f"w{i}" for i in range(40)] + ["good", "Human:", "Assistant:"]


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    """A WordLevel tokenizer and a 2-layer BERT with random weights, saved like any local backbone."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = {token: index for index, token in enumerate(SPECIALS + WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    BertModel(config).save_pretrained(folder)
    return str(folder)


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(WORDS[:40]) for _ in range(count))


def marker_pairs(count: int, seed: int = 1) -> list[PreferencePair]:
    """The chosen response contains the word "good" somewhere; the rejected one does not."""
    rng = random.Random(seed)
    pairs = []
    for index in range(count):
        prompt = [{"role": "user", "content": words(rng, rng.randint(3, 12))}]
        chosen = words(rng, rng.randint(2, 8)).split()
        chosen.insert(rng.randint(0, len(chosen)), "good")
        level = "clear" if index % 2 else "slight"
        pairs.append(PreferencePair(prompt, " ".join(chosen), words(rng, rng.randint(3, 9)), level, group=f"g{index}"))
    return pairs


def small_config(backbone: str, **changes) -> RewardTrainConfig:
    values = dict(
        backbone=backbone, epochs=4, learning_rate=2e-3, batch_size=16, max_length=64, log_every=5, device="cpu"
    )
    values.update(changes)
    return RewardTrainConfig(**values)


def test_left_truncation_drops_the_oldest_prompt_text_and_keeps_both_responses(backbone):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(backbone)
    prompt = [
        {"role": "user", "content": "w1 " * 30},
        {"role": "assistant", "content": "w2 " * 30},
        {"role": "user", "content": "w3 w4 w5"},
    ]
    pair = PreferencePair(prompt, "w6 w7 good w8", "w9 w10")
    encoded = encode_pairs(tokenizer, [pair], max_length=20)

    chosen = tokenizer.convert_ids_to_tokens(encoded.chosen[0])
    rejected = tokenizer.convert_ids_to_tokens(encoded.rejected[0])
    assert len(chosen) == 20 and len(rejected) == 20
    assert chosen[0] == rejected[0] == "[CLS]" and chosen[-1] == rejected[-1] == "[SEP]"
    assert chosen[-6:-1] == ["Assistant:", "w6", "w7", "good", "w8"]
    assert rejected[-4:-1] == ["Assistant:", "w9", "w10"]
    assert "w1" not in chosen  # the oldest turn went first
    assert chosen[-9:-6] == ["w3", "w4", "w5"]  # the latest user turn survives
    assert encoded.prompt_cut == 1 and encoded.response_cut == 0


def test_a_response_longer_than_max_length_keeps_its_start_and_the_pair_is_not_dropped(backbone):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(backbone)
    pair = PreferencePair([{"role": "user", "content": "w1"}], "good " + "w2 " * 40, "w3")
    encoded = encode_pairs(tokenizer, [pair], max_length=10)
    assert len(encoded) == 1
    assert tokenizer.convert_ids_to_tokens(encoded.chosen[0])[:2] == ["[CLS]", "good"]
    assert len(encoded.chosen[0]) == 10
    assert encoded.response_cut == 1


def test_split_by_group_never_puts_a_prompt_on_both_sides():
    prompts = [[{"role": "user", "content": f"question {i % 7}"}] for i in range(40)]
    pairs = [PreferencePair(p, "a", "b") for p in prompts]  # groups derived from the prompt text
    train, evaluation = split_by_group(pairs, 0.25, seed=3)
    assert len(train) + len(evaluation) == 40
    assert 5 <= len(evaluation) <= 20
    assert not {p.group_id() for p in train} & {p.group_id() for p in evaluation}
    assert split_by_group(pairs, 0.25, seed=3) == (train, evaluation)  # seeded


def test_tiny_model_learns_the_marker_preference_and_saves_a_loadable_model(backbone, tmp_path):
    pairs = marker_pairs(240)
    logged: list[tuple[int, dict]] = []
    progress: list[tuple[int, int, str]] = []
    before = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1).state_dict()

    final = train_reward_model(
        pairs,
        small_config(backbone),
        tmp_path / "rm",
        on_log=lambda s, m: logged.append((s, m)),
        on_progress=lambda *report: progress.append(report),
    )

    assert final["eval_accuracy"] > 0.9, final
    assert final["train_pairs"] + final["eval_pairs"] == 240 and final["dropped_pairs"] == 0
    assert final["eval_pairs_clear"] + final["eval_pairs_slight"] == final["eval_pairs"]
    assert final["eval_accuracy_clear"] is not None and final["eval_accuracy_slight"] is not None
    assert final["eval_mean_margin"] > 0

    steps = [step for step, _ in logged]
    assert steps == sorted(steps) and steps[-1] == logged[-1][1]["total_steps"]
    for key in ("step", "total_steps", "epoch", "loss", "learning_rate", "pairs_per_second"):
        assert key in logged[0][1]
    assert "eval_accuracy" in logged[-1][1] and "eval_loss" in logged[-1][1]
    assert logged[-1][1]["loss"] < logged[0][1]["loss"]

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    assert model.config.num_labels == 1

    # Progress: every step, not only the logged ones, and each phase in order.
    total = final["steps"]
    assert progress[:2] == [(0, 0, "loading"), (0, 0, "tokenizing")]
    training_steps = [step for step, _, phase in progress if phase == "training"]
    assert training_steps == sorted(training_steps) and set(training_steps) == set(range(total + 1))
    assert {report[1] for report in progress[2:]} == {total}
    assert "evaluating" in {phase for _, _, phase in progress}
    assert progress[-1] == (total, total, "saving")
    changed = [
        name for name, value in model.state_dict().items() if name in before and not torch.equal(value, before[name])
    ]
    assert any("encoder" in name for name in changed)  # the backbone itself was trained, not only the head
    assert json.loads((tmp_path / "rm" / "metrics.json").read_text())["eval_accuracy"] == final["eval_accuracy"]
    assert json.loads((tmp_path / "rm" / "train_config.json").read_text())["max_length"] == 64

    scorer = load_reward_model(str(tmp_path / "rm"), device="cpu")
    prompt = [{"role": "user", "content": "w1 w2"}]
    assert scorer.score(prompt, "w3 good w4") > scorer.score(prompt, "w3 w5 w4")
    held_out = evaluate_pairs(scorer, marker_pairs(60, seed=99))
    assert held_out["pairs"] == 60 and held_out["accuracy"] > 0.9


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_last_layer_for_the_first_token_only_gives_the_same_rewards_and_gradients(backbone, attention):
    tokenizer = load_tokenizer(backbone)
    torch.manual_seed(0)
    plain = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=1, attn_implementation=attention)
    torch.manual_seed(0)
    fast = load_reward_backbone(backbone, tokenizer)
    fast.config._attn_implementation = attention
    texts = ["w1 w2 w3 good", "w4", "w5 w6 w7 w8 w9 w10 w11", "good w2"]  # different lengths: padding in the batch
    batch = collate([tokenizer(text)["input_ids"] for text in texts], tokenizer.pad_token_id, torch.device("cpu"))

    assert fast.bert(**batch).last_hidden_state.shape[1] == 1  # the short cut is in use
    rewards = {}
    for name, model in (("plain", plain), ("fast", fast)):
        rewards[name] = model(**batch).logits.squeeze(-1)
        rewards[name].sum().backward()
    torch.testing.assert_close(rewards["fast"], rewards["plain"], rtol=0, atol=1e-6)
    for (name, p_plain), p_fast in zip(plain.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(p_fast.grad, p_plain.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_bf16_and_fp32_precision_both_train(backbone, tmp_path):
    for precision in ("bf16", "fp32"):
        final = train_reward_model(marker_pairs(64), small_config(backbone, precision=precision), tmp_path / precision)
        assert final["precision"] == precision
        assert final["eval_accuracy"] > 0.8, final


def test_same_seed_gives_the_same_model(backbone, tmp_path):
    pairs = marker_pairs(64)
    config = small_config(backbone, epochs=1)
    first = train_reward_model(pairs, config, tmp_path / "a")
    second = train_reward_model(pairs, config, tmp_path / "b")
    assert first["eval_loss"] == second["eval_loss"]
    assert first["train_loss"] == second["train_loss"]


def test_level_margin_and_grad_accumulation_and_group_sampling_run(backbone, tmp_path):
    pairs = marker_pairs(48)
    for pair in pairs:
        pair.group = "g" + str(int(pair.group[1:]) % 6)  # 6 prompt groups of 8 pairs
    config = small_config(backbone, epochs=1, margin="level", grad_accum_steps=2, batch_size=4, max_pairs_per_group=3)
    logged = []
    final = train_reward_model(pairs, config, tmp_path / "rm", on_log=lambda s, m: logged.append(m))
    assert final["pairs_trained"] == 3 * 6 - 3 * final["eval_pairs"] // 8  # 3 sampled from each train group
    assert logged[-1]["total_steps"] == final["steps"] == 2  # 4-5 groups x 3 pairs / 4 per batch / 2 accum


def test_should_stop_raises_training_stopped_and_writes_nothing(backbone, tmp_path):
    calls = []

    def stop_on_third_check() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(TrainingStopped):
        train_reward_model(marker_pairs(64), small_config(backbone), tmp_path / "rm", should_stop=stop_on_third_check)
    assert len(calls) == 3
    assert not (tmp_path / "rm").exists()


def test_bad_pairs_and_config_get_clear_errors(backbone, tmp_path):
    pairs = marker_pairs(8)
    pairs[5].level = "great"
    with pytest.raises(ValueError, match="pair 5: level"):
        train_reward_model(pairs, small_config(backbone), tmp_path / "rm")
    with pytest.raises(ValueError, match="no preference pairs"):
        train_reward_model([], small_config(backbone), tmp_path / "rm")
    with pytest.raises(ValueError, match="margin"):
        train_reward_model(marker_pairs(8), small_config(backbone, margin="big"), tmp_path / "rm")
    with pytest.raises(ValueError, match="precision"):
        train_reward_model(marker_pairs(8), small_config(backbone, precision="fp8"), tmp_path / "rm")
