"""A policy run's data: prompts and dialogues from a batch or an uploaded JSONL file, checked by the
one message rule (rlhf.prompts), and the held-out prompt split; a DPO run's preference pairs, by the reward run's
rules (rewardmodel.services)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from annotate.models import Batch, Judgment
from policy.errors import PolicyRunError
from policy.models import PolicyRun
from rewardmodel.services import RewardRunError, judgments_for, pairs_from_judgments
from rewardmodel.train import PreferencePair
from rlhf.prompts import MessageError, check_messages, prompt_group_id

# Held-out prompts for evaluation: this share of the distinct prompts, at least 1, at most the run's
# eval_max_prompts (ReinforceConfig, 64 by default).
EVAL_FRACTION = 0.2
# An uploaded prompts / dialogues file larger than this is refused before it is read.
MAX_DATA_FILE_BYTES = 50 * 1024 * 1024

Messages = list[dict]


# Data in -----------------------------------------------------------------------------------------


def _check_messages(messages: Any, where: str, *, last_role: str) -> Messages:
    """A prompt string (one user turn) or a message list, checked by the one message rule (rlhf.prompts)."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    try:
        return check_messages(messages, last_role=last_role)
    except MessageError as exc:
        raise PolicyRunError(f"{where}, {exc}.") from None


def _jsonl_records(lines: Iterable[str], name: str) -> Iterable[tuple[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise PolicyRunError(f"{where}: not valid JSON ({exc.msg}).") from None


def parse_prompts_jsonl(lines: Iterable[str], name: str = "prompts file") -> list[Messages]:
    """Prompts from JSONL: each line a string, or an object whose "prompt" (or "messages") is a
    string or a message list ending with a user turn."""
    prompts = []
    for where, record in _jsonl_records(lines, name):
        if isinstance(record, dict):
            key = "prompt" if "prompt" in record else "messages" if "messages" in record else None
            if key is None:
                raise PolicyRunError(f"{where}: needs a 'prompt' field.")
            record = record[key]
        prompts.append(_check_messages(record, f"{where}, field 'prompt'", last_role="user"))
    if not prompts:
        raise PolicyRunError(f"{name} has no prompts.")
    return prompts


def parse_dialogues_jsonl(lines: Iterable[str], name: str = "dialogues file") -> list[Messages]:
    """Demonstrations from JSONL: each line {"messages": [...]} ending with an assistant turn,
    or {"prompt": str | messages, "response": str}."""
    dialogues = []
    for where, record in _jsonl_records(lines, name):
        if not isinstance(record, dict):
            raise PolicyRunError(f"{where}: expected an object with 'messages' or 'prompt' and 'response'.")
        if "messages" in record:
            dialogues.append(_check_messages(record["messages"], f"{where}, field 'messages'", last_role="assistant"))
            continue
        if "prompt" not in record or not isinstance(record.get("response"), str) or not record["response"].strip():
            raise PolicyRunError(f"{where}: expected 'messages', or 'prompt' and a non-empty 'response'.")
        prompt = _check_messages(record["prompt"], f"{where}, field 'prompt'", last_role="user")
        dialogues.append([*prompt, {"role": "assistant", "content": record["response"]}])
    if not dialogues:
        raise PolicyRunError(f"{name} has no dialogues.")
    return dialogues


def batch_prompts(batch: Batch) -> list[Messages]:
    """The distinct prompts of a batch's items, in item order."""
    return unique_prompts(item.chat_messages() for item in batch.items.order_by("pk"))


def batch_demonstrations(batch: Batch) -> list[Messages]:
    """One dialogue per pairwise judgment of the batch (not those marked wrong): the prompt and the chosen response.

    Ranking judgments (rating None) are left out: a ranking may tie its best responses.
    """
    judgments = (
        Judgment.objects.kept().filter(item__batch=batch, rating__isnull=False).select_related("item").order_by("pk")
    )
    return [[*j.item.chat_messages(), {"role": "assistant", "content": j.chosen_text}] for j in judgments]


def batch_preference_pairs(
    batch: Batch, aggregate: str = "each", ranking_aggregate: str = "each", exclude_annotators: Iterable = ()
) -> list[PreferencePair]:
    """The batch's judgments as a reward run takes them: judgments marked wrong and excluded annotators left out,
    ratings aggregated (`aggregate`), rankings as their weighted pairs (`ranking_aggregate`)."""
    try:
        return pairs_from_judgments(judgments_for([batch], exclude_annotators), aggregate, ranking_aggregate)
    except RewardRunError as exc:
        raise PolicyRunError(str(exc)) from None


def run_preference_pairs(run: PolicyRun) -> list[PreferencePair]:
    """A DPO run's pairs, with the aggregation and exclusions it was started with."""
    if not run.data_batch_id:
        raise PolicyRunError(f"{run} has no batch of judgments to learn from (its batch was deleted).")
    pairs = batch_preference_pairs(
        run.data_batch,
        run.config.get("aggregate", "each"),
        run.config.get("ranking_aggregate", "each"),
        run.config.get("exclude_annotators", []),
    )
    if not pairs:
        raise PolicyRunError(f"Batch {run.data_batch.name} has no (untied) judgments to learn from.")
    return pairs


def unique_prompts(prompts: Iterable[Messages]) -> list[Messages]:
    seen, unique = set(), []
    for prompt in prompts:
        key = prompt_group_id(prompt)
        if key not in seen:
            seen.add(key)
            unique.append(prompt)
    return unique


def split_eval_prompts(
    prompts: list[Messages], seed: int = 0, max_eval: int = 64
) -> tuple[list[Messages], list[Messages]]:
    """(train, eval): a deterministic held-out share (a fifth, at most `max_eval`), chosen by a hash of each prompt,
    never on both sides."""
    prompts = unique_prompts(prompts)
    if len(prompts) < 2:
        raise PolicyRunError(f"Need at least 2 distinct prompts (one to train on, one held out); got {len(prompts)}.")
    n_eval = min(max_eval, max(1, round(EVAL_FRACTION * len(prompts))))

    def rank(prompt: Messages) -> str:
        return hashlib.sha256(f"{seed}:{prompt_group_id(prompt)}".encode()).hexdigest()

    held_out = {prompt_group_id(p) for p in sorted(prompts, key=rank)[:n_eval]}
    train = [p for p in prompts if prompt_group_id(p) not in held_out]
    evaluate = [p for p in prompts if prompt_group_id(p) in held_out]
    return train, evaluate


def read_run_data(run: PolicyRun) -> list[Messages] | list[PreferencePair]:
    """The run's prompts (REINFORCE), dialogues (SFT) or preference pairs (DPO), from its batch or its uploaded file."""
    if run.kind == PolicyRun.Kind.DPO:
        return run_preference_pairs(run)
    if run.data_batch_id:
        batch = run.data_batch
        data = batch_demonstrations(batch) if run.kind == PolicyRun.Kind.SFT else batch_prompts(batch)
        if not data:
            what = "judged items" if run.kind == PolicyRun.Kind.SFT else "items"
            raise PolicyRunError(f"Batch {batch.name} has no {what}.")
        return data
    if run.data_file:
        with run.data_file.open("rb") as handle:
            lines = [line.decode("utf-8", errors="replace") for line in handle]
        parse = parse_dialogues_jsonl if run.kind == PolicyRun.Kind.SFT else parse_prompts_jsonl
        return parse(lines, Path(run.data_file.name).name)
    raise PolicyRunError(f"Run {run.pk} has neither a batch nor a file of data.")


def read_upload(upload: IO[bytes], name: str) -> tuple[bytes, list[str]]:
    size = getattr(upload, "size", None)
    if size is not None and size > MAX_DATA_FILE_BYTES:
        raise PolicyRunError(f"{name} is larger than {MAX_DATA_FILE_BYTES // (1024 * 1024)} MB.")
    content = upload.read()
    if isinstance(content, str):
        content = content.encode()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyRunError(f"{name} is not UTF-8 text (byte {exc.start}).") from None
    return content, text.splitlines()
