"""Prompts as chat messages: what a valid message list is, the optional input, the prompt group, transcripts.

A prompt is a list of ``{"role", "content"}`` messages (roles in `ROLES`); the last user turn is the instruction.
An AlpacaFarm-style item keeps its optional "Input" apart for display; a model sees it joined onto the last turn
after a blank line (`join_input`).

Plain-text transcripts come in three formats, each for its own reader:
- `lecture_transcript`: ``<User> …\\n\\n<Assistant> …`` (the lecture's notation), for exported prompt strings;
  a single user turn is just its text.
- `hh_transcript`: ``\\n\\nHuman: …\\n\\nAssistant:`` (HH-RLHF), the reward model's input when its tokenizer has
  no chat template; ends where the response starts.
- `plain_dialogue`: ``Human: …\\n\\nAssistant: …\\n\\n``, the policy's input when its tokenizer has no chat
  template, with the character spans of the assistant turns (what SFT learns).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

ROLES = ("system", "user", "assistant")
HH_ROLE_NAMES = {"user": "Human", "assistant": "Assistant", "system": "System"}
PLAIN_USER_PREFIX = "Human: "
PLAIN_ASSISTANT_PREFIX = "Assistant:"


class MessageError(ValueError):
    """A message list that breaks the rules; the text names the message (1-based) and what is wrong."""


def check_messages(value: Any, *, last_role: str | None = None, allow_empty: bool = False) -> list[dict]:
    """A copy of the messages as ``{"role", "content"}`` dicts, or MessageError at the first that breaks a rule.

    Every message is an object with a role of `ROLES` and string content, non-blank unless `allow_empty` (an HH
    dialogue may hold an empty assistant turn); the list is not empty and ends with `last_role` when given.
    """
    if not isinstance(value, list) or not value:
        raise MessageError("expected a non-empty list of {role, content} messages")
    messages = []
    for number, message in enumerate(value, start=1):
        if not isinstance(message, dict):
            raise MessageError(f"message {number}: expected an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise MessageError(f"message {number}: role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise MessageError(f"message {number}: content must be a string")
        if not allow_empty and not content.strip():
            raise MessageError(f"message {number}: empty content")
        messages.append({"role": role, "content": content})
    if last_role is not None and messages[-1]["role"] != last_role:
        raise MessageError(f"the last message must be the {last_role}'s")
    return messages


def join_input(messages: list[dict], prompt_input: str = "") -> list[dict]:
    """The prompt as a model sees it: a copy of the messages with the input joined onto the last turn."""
    joined = [{"role": m["role"], "content": m["content"]} for m in messages]
    if prompt_input and joined:
        joined[-1]["content"] = f"{joined[-1]['content']}\n\n{prompt_input}"
    return joined


def prompt_group_id(messages: list[dict]) -> str:
    """One id per distinct prompt (as the model sees it), so an eval split never has a prompt on both sides."""
    text = json.dumps([{"role": m["role"], "content": m["content"]} for m in messages], sort_keys=True)
    return "prompt-" + hashlib.sha256(text.encode()).hexdigest()[:16]


# A prompt-disjoint split in two halves, for two reward models that never saw the same prompt (a policy's reward
# model and its independent judge).
PROMPT_HALVES = ("first", "second")


def prompt_half(group_id: str) -> str:
    """Which half of the prompt-disjoint split a prompt group falls in: fixed by a hash of its id, so it does not
    depend on which batches a run takes, and two runs on "first" and "second" never share a prompt."""
    digest = hashlib.sha256(f"half:{group_id}".encode()).digest()
    return PROMPT_HALVES[digest[0] & 1]


def lecture_transcript(messages: list[dict]) -> str:
    """``<User> …\\n\\n<Assistant> …``, one turn per paragraph; a lone user turn is just its text."""
    if len(messages) == 1 and messages[0].get("role", "user") == "user":
        return messages[0]["content"]
    return "\n\n".join(f"<{m.get('role', 'user').capitalize()}> {m['content']}" for m in messages)


def hh_transcript(messages: list[dict]) -> str:
    """The HH-RLHF ``\\n\\nHuman: … \\n\\nAssistant: …`` transcript, ending where the response starts."""
    turns = [f"\n\n{HH_ROLE_NAMES.get(m['role'], m['role'].title())}: {m['content']}" for m in messages]
    return "".join(turns) + "\n\nAssistant:"


def plain_dialogue(messages: list[dict], eos: str = "") -> tuple[str, list[tuple[int, int]]]:
    """``Human: …\\n\\nAssistant: …\\n\\n`` (system text bare) and the (start, end) span of each assistant answer.

    An answer's span starts after "Assistant:" and holds its text and `eos` (the end the model must learn).
    """
    text, spans = "", []
    for message in messages:
        if message["role"] == "assistant":
            text += PLAIN_ASSISTANT_PREFIX
            start = len(text)
            text += f" {message['content']}{eos}"
            spans.append((start, len(text)))
            text += "\n\n"
        elif message["role"] == "system":
            text += f"{message['content']}\n\n"
        else:
            text += f"{PLAIN_USER_PREFIX}{message['content']}\n\n"
    return text, spans
