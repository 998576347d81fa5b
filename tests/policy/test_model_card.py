"""Every policy checkpoint carries a model card: the prompt format and a generation snippet that builds the
same prompt ids as training, with the run's sampling settings."""

from __future__ import annotations

import re

import pytest
import torch

from policy.reinforce.card import MODEL_FOLDER_PLACEHOLDER
from policy.reinforce.config import ReinforceConfig, SFTConfig
from policy.reinforce.loading import load_policy
from policy.reinforce.sampling import encode_prompts
from policy.reinforce.train import save_model_dir

MESSAGES = [{"role": "user", "content": "What colour is the sky?"}]


def snippet_from(card: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", card, re.DOTALL)
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.parametrize("policy_fixture", ["tiny_policy", "tiny_chat_policy"])
def test_reinforce_checkpoint_card_generates_from_the_training_prompt(request, policy_fixture, tmp_path):
    model, tokenizer = load_policy(request.getfixturevalue(policy_fixture), device=torch.device("cpu"))
    config = ReinforceConfig(temperature=0.7, top_p=0.9, max_new_tokens=5)
    folder = save_model_dir(
        model, tokenizer, tmp_path / "final", {"config": config.to_dict(), "policy_path": "base", "step": 3}
    )
    card = (tmp_path / "final" / "README.md").read_text()

    assert "REINFORCE" in card and "after step 3" in card
    assert "- `temperature`: 0.7" in card and "- `max_new_tokens`: 5" in card
    code = snippet_from(card)
    assert "do_sample=True, temperature=0.7, top_p=0.9, max_new_tokens=5" in code
    namespace: dict = {}
    exec(code.replace(MODEL_FOLDER_PLACEHOLDER, folder), namespace)
    trained_ids, _ = encode_prompts(tokenizer, [MESSAGES], config.max_prompt_tokens, torch.device("cpu"))
    assert namespace["inputs"]["input_ids"].tolist() == trained_ids.tolist(), "the same prompt ids as in training"
    assert isinstance(namespace["answer"], str)


def test_sft_checkpoint_card_says_it_sampled_nothing(tiny_chat_policy, tmp_path):
    model, tokenizer = load_policy(tiny_chat_policy, device=torch.device("cpu"))
    save_model_dir(model, tokenizer, tmp_path / "final", {"config": SFTConfig().to_dict(), "base_path": "base"})
    card = (tmp_path / "final" / "README.md").read_text()

    assert "supervised fine-tuning" in card and "chat template" in card
    assert "SFT samples nothing" in card
