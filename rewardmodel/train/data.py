"""Preference pairs, the prompt-disjoint split, and turning a (prompt, response) into token ids.

Plain data only: no Django, no model. The tokenizer is any Hugging Face tokenizer.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

from rlhf.preferences import LEVELS
from rlhf.prompts import MessageError, check_messages, hh_transcript, prompt_group_id
from rlhf.rankings import pairs_of, tiers_from_order


@dataclass
class PreferencePair:
    """One human preference: for `prompt`, `chosen` beat `rejected`."""

    prompt: list[dict]  # chat messages {"role", "content"}; the last one is what the responses answer
    chosen: str
    rejected: str
    level: str = ""  # "clear" | "slight" | "" unknown
    weight: float = 1.0
    group: str = ""  # prompt group id: the eval split never puts one group on both sides; "" -> from the prompt
    # The loss margin of `level` (rlhf.preferences.loss_margin, as the export writes it; 0.0 unknown). Only a record:
    # the trainer takes it from `level` and RewardTrainConfig.level_margins by the same rule.
    margin: float = 0.0
    # The ranking the pair comes from ("" for a pairwise judgment): the trainer samples `pairs_per_ranking` pairs of
    # each ranking per epoch, and reports held-out accuracy on ranking pairs apart from pairwise ones.
    ranking: str = ""

    def group_id(self) -> str:
        return self.group or prompt_group_id(self.prompt)


@dataclass
class RankedResponses:
    """One person's (or one aggregated) order of a prompt's K responses: `tiers` of 1-based response numbers, best
    first (rlhf.rankings). Held-out ones measure how well the model's order agrees with people's (Kendall's tau)."""

    prompt: list[dict]
    responses: list[str]
    tiers: list[list[int]]
    group: str = ""  # as PreferencePair.group: the same prompt group as the ranking's pairs

    def group_id(self) -> str:
        return self.group or prompt_group_id(self.prompt)

    def pairs(self, key: str = "", level: str = "") -> list[PreferencePair]:
        """The ranking's C(K,2) pairs, each weighing 1/C(K,2) so that the prompt counts once (the lecture; ties give
        none). `key` names the ranking on each pair: the trainer may draw M of them per epoch instead
        (RewardTrainConfig.pairs_per_ranking)."""
        return [
            PreferencePair(
                self.prompt,
                self.responses[better - 1],
                self.responses[worse - 1],
                level=level,
                weight=weight,
                group=self.group,
                ranking=key,
            )
            for better, worse, weight in pairs_of(self.tiers, "all")
        ]


def pairs_from_ranking(
    prompt: list[dict], responses_best_first: list[str], group: str = "", level: str = ""
) -> list[PreferencePair]:
    """A K-way ranking given as responses best first, as its weighted pairs (RankedResponses.pairs)."""
    if len(responses_best_first) < 2:
        raise ValueError(f"a ranking needs at least 2 responses, got {len(responses_best_first)}")
    tiers = tiers_from_order(range(1, len(responses_best_first) + 1))
    return RankedResponses(prompt, responses_best_first, tiers, group).pairs(level=level)


def validate_pairs(pairs: list[PreferencePair]) -> None:
    """Raise ValueError naming the first bad pair and field."""
    if not pairs:
        raise ValueError("no preference pairs to train on")
    for index, pair in enumerate(pairs):
        where = f"pair {index}"
        try:
            check_messages(pair.prompt, allow_empty=True)  # HH dialogues may hold an empty assistant turn
        except MessageError as error:
            raise ValueError(f"{where}: prompt: {error}") from None
        for field_name in ("chosen", "rejected"):
            if not isinstance(getattr(pair, field_name), str):
                raise ValueError(f"{where}: {field_name} must be text")
        if pair.level not in ("", *LEVELS):
            raise ValueError(f"{where}: level must be one of '', 'clear', 'slight', got {pair.level!r}")
        if not pair.weight > 0:
            raise ValueError(f"{where}: weight must be positive, got {pair.weight!r}")


def split_by_group(
    pairs: list[PreferencePair], eval_fraction: float, seed: int
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Split so that no prompt group is in both train and eval; eval gets about `eval_fraction` of the pairs.

    With fewer than two groups, or eval_fraction 0, everything is train and eval is empty.
    """
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    by_group: dict[str, list[PreferencePair]] = defaultdict(list)
    for pair in pairs:
        by_group[pair.group_id()].append(pair)
    groups = sorted(by_group)
    if eval_fraction == 0 or len(groups) < 2:
        return list(pairs), []
    random.Random(seed).shuffle(groups)
    target = eval_fraction * len(pairs)
    eval_groups: set[str] = set()
    taken = 0
    for group in groups[:-1]:  # at least one group stays in train
        if taken >= target:
            break
        eval_groups.add(group)
        taken += len(by_group[group])
    train = [pair for pair in pairs if pair.group_id() not in eval_groups]
    evaluation = [pair for pair in pairs if pair.group_id() in eval_groups]
    return train, evaluation


# --- text and token ids --------------------------------------------------------------------------------------------


# rlhf.prompts.hh_transcript as a chat template, saved with every trained model's tokenizer so that
# `tokenizer.apply_chat_template(messages, tokenize=False)` outside the app gives the text the model was trained on.
# It carries no special tokens: the tokenizer adds them ([CLS] … [SEP] for BERT), as it did in training.
TRANSCRIPT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '\\n\\n' }}"
    "{%- if message['role'] == 'user' %}Human"
    "{%- elif message['role'] == 'assistant' %}Assistant"
    "{%- elif message['role'] == 'system' %}System"
    "{%- else %}{{ message['role'] | title }}{%- endif -%}"
    ": {{ message['content'] }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ '\\n\\nAssistant:' }}{%- endif -%}"
)


def has_own_chat_template(tokenizer) -> bool:
    """Whether the backbone brought a chat template (Qwen, Llama …) rather than our transcript one (or none)."""
    template = getattr(tokenizer, "chat_template", None)
    return bool(template) and template != TRANSCRIPT_CHAT_TEMPLATE


def prompt_and_response_text(tokenizer, prompt: list[dict], response: str) -> tuple[str, str]:
    """Split the model input into prompt text and response text, so truncation can cut the prompt only."""
    if has_own_chat_template(tokenizer):
        prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": response}], tokenize=False)
        if full.startswith(prompt_text):
            return prompt_text, full[len(prompt_text) :]
        return prompt_text, response  # templates that rewrite earlier turns: keep the raw response
    return hh_transcript(prompt), " " + response


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer adds before and after a text ([CLS] … [SEP] for BERT, BOS for Llama, none for Qwen)."""
    if has_own_chat_template(tokenizer):
        return [], []  # the template text already carries them
    core = tokenizer("hello", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(core) + 1):
        if full[start : start + len(core)] == core:
            return full[:start], full[start + len(core) :]
    return [], []


def join_truncated(
    prefix: list[int], prompt_ids: list[int], response_ids: list[int], suffix: list[int], max_length: int
) -> tuple[list[int], bool]:
    """prefix + prompt + response + suffix within max_length, dropping the OLDEST prompt tokens first.

    The response is never cut while it fits alone; a response longer than max_length keeps its start (and the
    prompt is dropped entirely). Returns the ids and whether the response itself had to be cut.
    """
    room = max_length - len(prefix) - len(suffix)
    if room <= 0:
        raise ValueError(f"max_length {max_length} leaves no room beside the special tokens")
    if len(response_ids) >= room:
        return prefix + response_ids[:room] + suffix, len(response_ids) > room
    keep = room - len(response_ids)
    kept_prompt = prompt_ids[-keep:] if len(prompt_ids) > keep else prompt_ids
    return prefix + kept_prompt + response_ids + suffix, False


@dataclass
class EncodedPairs:
    """Token ids of pairs, ready to batch; `response_cut` counts pairs whose response exceeded max_length alone."""

    chosen: list[list[int]]
    rejected: list[list[int]]
    levels: list[str]
    weights: list[float]
    groups: list[str]
    prompt_cut: int = 0  # pairs whose oldest prompt text was dropped to fit
    response_cut: int = 0  # pairs with a response longer than max_length on its own (its start is kept)
    rankings: list[str] = field(default_factory=list)  # each pair's PreferencePair.ranking ("" pairwise)

    def __len__(self) -> int:
        return len(self.chosen)

    def length(self, index: int) -> int:
        return max(len(self.chosen[index]), len(self.rejected[index]))


def encode_texts(
    tokenizer, prompts: list[list[dict]], responses: list[str], max_length: int
) -> tuple[list[list[int]], list[bool], list[bool]]:
    """Token ids for each (prompt, response), left-truncated, with per-item flags: prompt cut, response cut."""
    prefix, suffix = special_tokens_around(tokenizer)
    texts = [prompt_and_response_text(tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
    if not texts:
        return [], [], []
    # verbose=False: texts longer than the tokenizer's model_max_length are expected here (join_truncated cuts them,
    # and the cuts are counted), so transformers' "Token indices sequence length is longer …" warning is noise.
    prompt_ids = tokenizer([t[0] for t in texts], add_special_tokens=False, verbose=False)["input_ids"]
    response_ids = tokenizer([t[1] for t in texts], add_special_tokens=False, verbose=False)["input_ids"]
    encoded, prompt_cut, response_cut = [], [], []
    for p_ids, r_ids in zip(prompt_ids, response_ids, strict=True):
        ids, cut_response = join_truncated(prefix, p_ids, r_ids, suffix, max_length)
        prompt_cut.append(len(prefix) + len(p_ids) + len(r_ids) + len(suffix) > max_length)
        response_cut.append(cut_response)
        encoded.append(ids)
    return encoded, prompt_cut, response_cut


def encode_pairs(tokenizer, pairs: list[PreferencePair], max_length: int) -> EncodedPairs:
    """Encode chosen and rejected of every pair; no pair is ever dropped."""
    prompts = [pair.prompt for pair in pairs]
    chosen, chosen_prompt_cut, chosen_response_cut = encode_texts(
        tokenizer, prompts, [p.chosen for p in pairs], max_length
    )
    rejected, rejected_prompt_cut, rejected_response_cut = encode_texts(
        tokenizer, prompts, [p.rejected for p in pairs], max_length
    )
    return EncodedPairs(
        chosen=chosen,
        rejected=rejected,
        levels=[p.level for p in pairs],
        weights=[p.weight for p in pairs],
        groups=[p.group_id() for p in pairs],
        rankings=[p.ranking for p in pairs],
        prompt_cut=sum(a or b for a, b in zip(chosen_prompt_cut, rejected_prompt_cut, strict=True)),
        response_cut=sum(a or b for a, b in zip(chosen_response_cut, rejected_response_cut, strict=True)),
    )


def length_grouped_batches(
    indices: list[int], lengths: list[int], batch_size: int, rng: random.Random, window_batches: int = 64
) -> list[list[int]]:
    """Batches of similar length (little padding) in random order.

    Shuffle, sort by length inside windows of `window_batches` batches, cut into batches, shuffle the batches:
    close to zero padding while keeping the order random (the "sortish" sampler).
    """
    order = list(indices)
    rng.shuffle(order)
    window = batch_size * window_batches
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
