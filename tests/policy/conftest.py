"""A tiny Llama-like policy and word-level tokenizer built in memory (no files, no downloads) for the policy tests."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL = ["<pad>", "<eos>", "<|im_start|>", "<|im_end|>"]
WORDS = ["Human:", "Assistant:", "user", "assistant", "system", "a", "b", "c", "d", "e", "hi", "hello", "sure", "ok"]
# ChatML-like, as SmolLM2's template: a dialogue renders as a prefix of its continuation.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def build_tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    vocab = {token: index for index, token in enumerate(SPECIAL + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", pad_token="<pad>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    if chat_template:
        tokenizer.chat_template = chat_template
        # As in SmolLM2, the end-of-turn token is the EOS the sampler stops at.
        tokenizer.eos_token = "<|im_end|>"
    return tokenizer


def build_policy(path, chat_template: str | None = None, seed: int = 0) -> str:
    tokenizer = build_tokenizer(chat_template)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(SPECIAL) + len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    # Tiny models on a CPU shared with other processes run ~10x faster on one thread than fighting for two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> str:
    """Policy dir whose tokenizer has no chat template: prompts use the plain Human/Assistant format."""
    return build_policy(tmp_path_factory.mktemp("tiny_policy"))


@pytest.fixture(scope="session")
def tiny_chat_policy(tmp_path_factory) -> str:
    return build_policy(tmp_path_factory.mktemp("tiny_chat_policy"), chat_template=CHAT_TEMPLATE)
