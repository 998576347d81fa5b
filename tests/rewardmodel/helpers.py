"""Test data for reward-model runs: a tiny random backbone on disk and a judged batch.

The backbone is a 1-layer BERT with a word-level tokenizer, built from a config (no
download) and saved with save_pretrained, so it loads by path exactly as a real one.
"""

from __future__ import annotations

from pathlib import Path

from annotate.models import Batch, Item, Judgment, Rating

WORDS = tuple(
    [
        "the",
        "a",
        "an",
        "is",
        "it",
        "this",
        "that",
        "what",
        "how",
        "why",
        "where",
        "who",
        "when",
        "do",
        "does",
        "can",
        "you",
        "me",
        "my",
        "your",
        "please",
        "tell",
        "about",
        "good",
        "great",
        "fine",
        "bad",
        "awful",
        "poor",
        "answer",
        "question",
        "help",
        "yes",
        "no",
        "maybe",
        "red",
        "blue",
        "green",
        "cat",
        "dog",
        "sun",
        "rain",
        "human",
        "assistant",
        "user",
        "system",
    ]
)

COLORS = ("red", "blue", "green", "yes", "no", "maybe")
NOUNS = ("cat", "dog", "sun", "rain")


def build_tiny_backbone(folder: Path) -> str:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {token: i for i, token in enumerate([*specials, *WORDS, ":", ".", "?", ",", "!"])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=128,
    )
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        num_labels=1,
        pad_token_id=vocab["[PAD]"],
    )
    folder.mkdir(parents=True, exist_ok=True)
    BertForSequenceClassification(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return str(folder)


def judged_batch(name: str, annotator, items: int = 12, slight_every: int = 3) -> Batch:
    """A batch whose annotator always prefers the response with "good" over the one with "bad"."""
    batch = Batch.objects.create(name=name)
    for n in range(items):
        color = COLORS[n % len(COLORS)]
        good, bad = f"the {color} answer is good .", f"the {color} answer is bad ."
        good_first = n % 2 == 0
        item = Item.objects.create(
            batch=batch,
            external_id=str(n),
            prompt=[{"role": "user", "content": f"tell me about the {color} {NOUNS[n % len(NOUNS)]} ?"}],
            response_1=good if good_first else bad,
            response_2=bad if good_first else good,
        )
        strength = "slight" if slight_every and n % slight_every == 0 else "clear"
        Judgment.objects.create(
            item=item, annotator=annotator, rating=Rating.from_choice(1 if good_first else 2, strength)
        )
    return batch
