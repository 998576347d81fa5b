"""Every trained reward-model folder carries a model card whose snippet scores exactly as the app does, and
tokenizing long inputs logs no "sequence length is longer than the maximum" warning."""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.utils import timezone

from rewardmodel.models import RewardModelRun
from rewardmodel.services import score_with_run
from rewardmodel.train import PreferencePair, RewardTrainConfig, train_reward_model
from rewardmodel.train.card import MODEL_FOLDER_PLACEHOLDER
from rewardmodel.train.data import encode_texts
from runs.models import RunStatus
from tests.rewardmodel.helpers import COLORS, NOUNS, build_tiny_backbone

MAX_LENGTH = 24
LONG_PROMPT = " ".join(f"tell me about the {color} {noun} ?" for color in COLORS for noun in NOUNS)


def preference_pairs(count: int = 24) -> list[PreferencePair]:
    pairs = []
    for n in range(count):
        color, noun = COLORS[n % len(COLORS)], NOUNS[n % len(NOUNS)]
        prompt = [{"role": "user", "content": f"tell me about the {color} {noun} ?"}]
        level = "slight" if n % 3 == 0 else "clear"
        pairs.append(PreferencePair(prompt, f"the {color} answer is good .", f"the {color} answer is bad .", level))
    return pairs


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("card")
    config = RewardTrainConfig(
        backbone=build_tiny_backbone(folder / "backbone"),
        epochs=2,
        learning_rate=1e-2,
        batch_size=8,
        max_length=MAX_LENGTH,
        eval_fraction=0.25,
        device="cpu",
        precision="fp32",
    )
    train_reward_model(preference_pairs(), config, folder / "model", data_description={"batches": "colours"})
    return folder / "model"


def snippet_from(card: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", card, re.DOTALL)
    assert len(blocks) == 1, "the card has one scoring snippet"
    return blocks[0]


def test_the_card_describes_format_data_config_and_metrics(trained_folder):
    card = (trained_folder / "README.md").read_text()

    assert "## Input format" in card and "\\n\\nHuman: …" in card
    assert f"At most {MAX_LENGTH} tokens" in card
    assert "- Pairs: 24" in card and "- Batches: colours" in card
    assert '"learning_rate": 0.01' in card
    assert "| Held-out preference accuracy |" in card
    code = snippet_from(card)
    assert len([line for line in code.splitlines() if line.strip()]) <= 12, "a snippet of about ten lines"
    assert "import torch" in code and "from transformers import" in code and "rewardmodel" not in code


@pytest.mark.django_db
def test_the_card_snippet_reproduces_the_score_box(trained_folder, capsys):
    run = RewardModelRun.objects.create(
        status=RunStatus.SUCCEEDED, artifact_path=str(trained_folder), finished_at=timezone.now()
    )
    namespace: dict = {}
    exec(
        snippet_from((trained_folder / "README.md").read_text()).replace(MODEL_FOLDER_PLACEHOLDER, str(trained_folder)),
        namespace,
    )  # noqa: E501
    assert capsys.readouterr().out.strip(), "the snippet prints an example reward"

    cases = [
        ("tell me about the red cat ?", "the red answer is good .", "the red answer is bad ."),
        ("what is the blue sun ?", "yes it is great", "no"),
        (LONG_PROMPT, "the green answer is good .", "maybe the dog"),  # longer than MAX_LENGTH: the prompt is cut
    ]
    app, snippet = [], []
    for prompt, response_1, response_2 in cases:
        app.extend(score_with_run(run, prompt, response_1, response_2))
        messages = [{"role": "user", "content": prompt}]
        snippet.extend(namespace["reward"](messages, response) for response in (response_1, response_2))

    assert snippet == pytest.approx(app, abs=1e-4)
    assert max(app) - min(app) > 1e-3, "the rewards differ, so a wrong input format would show"


def test_the_saved_tokenizer_formats_and_truncates_as_in_training(trained_folder):
    from transformers import AutoTokenizer

    from rewardmodel.train.scoring import load_reward_model

    tokenizer = AutoTokenizer.from_pretrained(trained_folder)
    messages = [{"role": "user", "content": LONG_PROMPT}, {"role": "assistant", "content": "the cat"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text.startswith("\n\nHuman: tell me") and text.endswith("\n\nAssistant: the cat")
    ids = tokenizer(text, truncation=True)["input_ids"]
    app_ids = encode_texts(load_reward_model(str(trained_folder)).tokenizer, [messages[:1]], ["the cat"], MAX_LENGTH)[0]
    assert ids == app_ids[0]
    assert len(ids) == MAX_LENGTH


@contextmanager
def transformers_warnings():
    """Records what transformers logs: its loggers do not propagate to the root, so caplog misses them."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_long_inputs_are_tokenized_without_the_too_long_warning(tmp_path):
    from transformers import AutoTokenizer

    backbone = build_tiny_backbone(tmp_path / "backbone")  # model_max_length 128
    prompt = [{"role": "user", "content": LONG_PROMPT * 2}]  # well over 128 tokens

    with transformers_warnings() as records:
        encoded, prompt_cut, _ = encode_texts(AutoTokenizer.from_pretrained(backbone), [prompt], ["yes"], 64)
    assert prompt_cut == [True] and len(encoded[0]) == 64
    assert not [r for r in records if "sequence length is longer" in r.getMessage()]

    with transformers_warnings() as records:  # the check can see the warning when it happens
        AutoTokenizer.from_pretrained(backbone)(LONG_PROMPT * 2)
    assert [r for r in records if "sequence length is longer" in r.getMessage()]
