"""Import comparisons from JSON / JSONL files (gzip accepted) into a batch.

One service function, `import_comparisons`, used by the `import_comparisons` command and
the admin upload alike. It reads and checks the whole file first, then writes everything
in one transaction: any bad record means nothing is written.

Formats (auto-detected from the keys of the first record):

- ``alpacafarm``: ``instruction``, ``input`` (optional, may be empty), ``output_1``,
  ``output_2``; optional ``generator_1`` / ``generator_2`` go to ``Item.source``.
- ``hh`` (Anthropic HH-RLHF): ``chosen`` and ``rejected``, each a whole dialogue
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` ending with an Assistant turn. See `parse_hh_pair`
  for how a pair is split into one prompt and two responses.
- ``trl`` (TRL preference data): ``prompt``, ``chosen``, ``rejected``, either all strings
  (standard format) or message lists (conversational format: the prompt a list of
  ``{role, content}`` ending with a user turn, chosen and rejected one assistant message each).
- ``plain``: ``prompt`` (string or message list), ``response_1``, ``response_2``; optional ``input``
  (as alpacafarm's).
- ``ranking``: ``prompt`` (string or message list, as ``plain``), ``responses`` (a list of 3 to 9 strings) and
  optionally the known order, as either ``ranking`` (response numbers best first, **1-based** like "Response 1"
  on screen: ``[2, 1, 3]``; a nested list is a tie, ``[[2, 3], 1]``, accepted only when the batch allows ties) or
  ``scores`` (one number per response, UltraFeedback style: higher is better, equal scores tie). A file of
  rankings makes (or fills) a ranking batch: a batch holds one kind, so a file that mixes ranking and pairwise
  records, or a ranking file for a pairwise batch, is refused. A new batch ranks K responses per item when every
  record has the same K (``Batch.ranking_size``), otherwise K is per item.

An optional ``id`` or ``external_id`` key gives the item's external id; otherwise it is the
line number (JSONL) or the record number (JSON array), 1-based.

When the file knows which response is preferred (hh, trl), the two responses are put in
random order (seeded when `seed` is given) and the known answer is kept as ``Item.gold``;
with ``as_judgments`` it is also stored as a judgment by the import user
(``settings.IMPORT_USERNAME``), so existing preference data can train a reward model.

A ranking's known order is kept in ``Item.source["ranking"]`` (tiers of the item's response numbers, best first,
`rlhf.rankings`; ``scores`` are kept too), not in ``Item.gold``, which holds a pairwise rating. The responses keep
the file's order: the ranking HIT shuffles the display per annotator anyway. With ``as_judgments`` the order is
also stored as a ranking judgment by the import user, and then every record must have one.
"""

from __future__ import annotations

import codecs
import gzip
import io
import itertools
import json
import math
import os
import random
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import IO, Any

import ijson
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from annotate.models import MAX_GUIDELINES_CHARS, MAX_OVERLAP, MAX_SAMPLES_PER_HIT, Batch, Item, Judgment, Rating
from annotate.table_statistics import IMPORT_TABLES, analyze_grown
from rlhf.prompts import MessageError, check_messages
from rlhf.rankings import MAX_RANKING_SIZE, MIN_RANKING_SIZE, RankingError, Tiers, check_tiers, tiers_from_scores

FORMATS = ("alpacafarm", "hh", "trl", "plain", "ranking")
RANKING_FORMATS = ("ranking",)  # formats whose records are rankings of K responses (a ranking batch)
FORMAT_CHOICES = [("auto", "Detect from the first record")] + [(f, f) for f in FORMATS]
KNOWN_PREFERENCE_FORMATS = ("hh", "trl")
CHUNK_SIZE = 500
EXTERNAL_ID_MAX_LENGTH = Item._meta.get_field("external_id").max_length

# A turn marker starts the text or follows a blank line, as in the HH-RLHF files.
HH_TURN = re.compile(r"(?:\A\s*|\n\n)(Human|Assistant):")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}


class ImportFileError(Exception):
    """The file cannot be imported; the message names the line (or record) and field."""

    def __init__(self, message: str, where: str = "", field: str = "") -> None:
        self.where = where
        self.field = field
        self.message = message
        prefix = ", ".join(part for part in (where, f"field '{field}'" if field else "") if part)
        super().__init__(f"{prefix}: {message}" if prefix else message)


@dataclass
class ImportResult:
    count: int
    batch: Batch
    format: str
    batch_created: bool
    judgment_count: int = 0
    judgments_by: str = ""


@dataclass
class Comparison:
    """One record, checked and normalised; `chosen` is 1 or 2 when the file knows the answer."""

    external_id: str
    prompt: list[dict]
    response_1: str
    response_2: str
    prompt_input: str = ""
    chosen: int | None = None
    source: dict | None = None
    where: str = ""  # "line 7" or "record 7", for error messages
    id_field: str = ""  # the key that gave the external id; empty when it is the line/record number
    # Rankings: responses 3..K, and the known order (tiers of response numbers, best first) when the file has one.
    more_responses: list[str] = dataclass_field(default_factory=list)
    tiers: Tiers | None = None

    @property
    def is_ranking(self) -> bool:
        return bool(self.more_responses)

    @property
    def size(self) -> int:
        """K, the number of responses."""
        return 2 + len(self.more_responses)


@dataclass(frozen=True)
class RankingRules:
    """What the target batch allows a ranking record: ties, and K when the batch fixes it."""

    allow_ties: bool = False
    size: int | None = None


@dataclass
class Record:
    data: dict
    where: str  # "line 7" or "record 7"
    number: int

    def fail(self, message: str, field: str = "") -> ImportFileError:
        return ImportFileError(message, self.where, field)


# Reading ------------------------------------------------------------------------------

ImportSource = str | Path | IO


def format_bytes(size: int) -> str:
    """1,048,576 -> '1 MiB': sizes in messages, as a person would say them."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def size_limit_message(what: str | None = None) -> str:
    """Names the limit and the setting that raises it."""
    what = what or "the file is larger than"
    limit = settings.IMPORT_MAX_BYTES
    return f"{what} the import limit of {format_bytes(limit)} ({limit:,} bytes; setting IMPORT_MAX_BYTES)"


class _LimitedReader(io.RawIOBase):
    """Bytes of `raw` (gunzipped when `gzipped`), refused once more than IMPORT_MAX_BYTES came out.

    Counting what comes *out* also stops a small gzip file that unpacks to gigabytes.
    """

    def __init__(self, raw: IO, gzipped: bool) -> None:
        super().__init__()
        self._raw = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        self._gzipped = gzipped
        self._count = 0
        self._limit = settings.IMPORT_MAX_BYTES

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._raw.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:
            if not self._gzipped:
                raise ImportFileError(f"cannot read the file: {exc}") from None
            raise ImportFileError(f"the file looks gzipped but cannot be decompressed ({exc})") from None
        self._count += len(data)
        if self._count > self._limit:
            raise ImportFileError(size_limit_message("the file unpacks to more than" if self._gzipped else None))
        buffer[: len(data)] = data
        return len(data)


@contextmanager
def open_source(source: ImportSource) -> Iterator[IO[bytes]]:
    """The source's bytes as a buffered stream, gunzipped when it starts with gzip's magic bytes, size-limited.

    Read as a stream, never whole: a file over the limit costs no memory, and a bad line 2 fails at line 2.
    A file object is read from its start (it is read twice: once to check, once to write).
    """
    limit = settings.IMPORT_MAX_BYTES
    if isinstance(source, str | Path):
        try:
            raw = open(source, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise ImportFileError(f"cannot read {source}: {exc.strerror or exc}") from None
        owned = True
        size = os.fstat(raw.fileno()).st_size
    else:
        raw, owned = source, False
        size = getattr(source, "size", None)
        raw.seek(0)
        if isinstance(raw, io.TextIOBase):  # records built in code: small, and bytes are what is counted
            raw = io.BytesIO(raw.read().encode())
    try:
        if size is not None and size > limit:
            raise ImportFileError(size_limit_message())
        magic = raw.read(2)
        raw.seek(0)
        gzipped = magic == b"\x1f\x8b"
        yield io.BufferedReader(_LimitedReader(raw, gzipped), buffer_size=1 << 16)
    finally:
        if owned:
            raw.close()


def read_text(source: ImportSource) -> str:
    """The file's whole text (gunzipped, within the size limit): for small files read in full, like the demo's."""
    with open_source(source) as stream:
        return _decode(stream.read(), "")


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        what = "not UTF-8 text" if where else "the file is not UTF-8 text"
        raise ImportFileError(f"{what} (byte {exc.start})", where) from None


# A JSON array is fed to the streaming parser in pieces of at most this many bytes (a line, or part of a long one).
ARRAY_PIECE_BYTES = 1 << 16
LEADING_SPACE = re.compile(rb"\s*")


def _peekable(source: str | IO[bytes]) -> io.BufferedReader:
    if isinstance(source, str):
        source = io.BytesIO(source.encode())
    return source if hasattr(source, "peek") else io.BufferedReader(source)


def _skip_blank(stream: io.BufferedReader, number: int) -> int:
    """Skip whitespace at the start of line `number` (whole blank lines too); the number of the line reached.

    Blank runs are skipped a buffer at a time, never line by line or kept: 256 MiB of newlines is a fraction of
    a second and no memory."""
    while (ahead := stream.peek(1)) and ahead[:1].isspace():
        skipped = LEADING_SPACE.match(ahead).end()  # not ahead.lstrip(): that copies the whole buffer, every line
        number += ahead.count(b"\n", 0, skipped)
        stream.read(skipped)
    return number


def _pieces(stream: io.BufferedReader, number: int, limit: int = -1) -> Iterator[tuple[int, bytes]]:
    """(line number, piece) of the stream's non-blank lines: whole lines, or pieces of at most `limit` bytes.

    Only whole blank lines are skipped (whitespace where a line starts is never inside a JSON string)."""
    at_line_start = True
    while piece := stream.readline(limit):
        if at_line_start and piece.isspace():
            # A blank line: skip the rest of the blank run a buffer at a time (peeking at every line would copy
            # the buffer each time; reading blank lines one by one takes 17 s for 256 MiB of newlines).
            number = _skip_blank(stream, number + piece.endswith(b"\n"))
            continue
        yield number, piece
        at_line_start = piece.endswith(b"\n")
        number += at_line_start


def iter_records(source: str | IO[bytes]) -> Iterator[Record]:
    """Records of a JSON array ("record N") or of JSONL ("line N"), streamed; blank lines are skipped.

    Neither is ever held whole: JSONL is read a line at a time, a JSON array is parsed as it streams (ijson),
    so memory stays at one record whatever the file's size or shape.
    """
    stream = _peekable(source)
    if stream.peek(3)[:3] == codecs.BOM_UTF8:
        stream.read(3)
    number = _skip_blank(stream, 1)
    if stream.peek(1)[:1] == b"[":
        yield from _array_records(stream, number)
        return
    for number, raw in _pieces(stream, number):  # noqa: B020 (the number the lines start from is passed in)
        where = f"line {number}"
        try:
            element = json.loads(_decode(raw, where))
        except json.JSONDecodeError as exc:
            raise ImportFileError(f"malformed JSON: {exc.msg} (column {exc.colno})", where) from None
        yield _as_record(element, where, number)


def _array_records(stream: io.BufferedReader, number: int) -> Iterator[Record]:
    """The records of a JSON array, each yielded as soon as the parser has it; errors name the line."""
    found = ijson.sendable_list()
    parser = ijson.items_coro(found, "item", use_float=True)
    count = 0
    for number, piece in _pieces(stream, number, ARRAY_PIECE_BYTES):  # noqa: B020
        try:
            parser.send(piece)
        except ijson.JSONError as exc:
            raise _malformed_array(exc, number) from None
        for element in found:
            count += 1
            yield _as_record(element, f"record {count}", count)
        del found[:]
    try:
        parser.close()
    except ijson.JSONError as exc:
        raise _malformed_array(exc, number) from None
    for element in found:
        count += 1
        yield _as_record(element, f"record {count}", count)


def _malformed_array(exc: Exception, number: int) -> ImportFileError:
    message = exc.args[0] if exc.args else exc
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else type(exc).__name__
    return ImportFileError(f"malformed JSON: {first_line}", f"line {number}")


def _as_record(element: Any, where: str, number: int) -> Record:
    if not isinstance(element, dict):
        raise ImportFileError(f"expected a JSON object, got {_type_name(element)}", where)
    return Record(element, where, number)


def _type_name(value: Any) -> str:
    # isinstance, not type(): the admin's JSON field gives a str subclass (JSONString) for a JSON string.
    names = ((bool, "true/false"), (dict, "an object"), (list, "a list"), (str, "a string"), (type(None), "null"))
    return next((name for kind, name in names if isinstance(value, kind)), "a number")


def detect_format(record: Record) -> str:
    keys = set(record.data)
    if {"instruction", "output_1", "output_2"} <= keys:
        return "alpacafarm"
    if {"prompt", "chosen", "rejected"} <= keys:
        return "trl"
    if {"chosen", "rejected"} <= keys:
        return "hh"
    if {"prompt", "response_1", "response_2"} <= keys:
        return "plain"
    if {"prompt", "responses"} <= keys:
        return "ranking"
    raise record.fail(
        f"cannot tell the format from the keys {sorted(keys)}; expected alpacafarm (instruction, output_1, "
        "output_2), hh (chosen, rejected), trl (prompt, chosen, rejected), plain (prompt, response_1, "
        "response_2) or ranking (prompt, responses), or name the format"
    )


def kind_of_format(fmt: str) -> str:
    """The batch kind (Batch.Kind value) a file of format `fmt` fills."""
    return Batch.Kind.RANKING if fmt in RANKING_FORMATS else Batch.Kind.PAIRWISE


def _check_same_kind(record: Record, fmt: str, first_where: str) -> None:
    """A batch holds one kind: refuse a ranking record in a pairwise file and the other way round."""
    is_ranking = "responses" in record.data
    if is_ranking == (fmt in RANKING_FORMATS):
        return
    this, file_kind = ("ranking", "pairwise") if is_ranking else ("pairwise", "ranking")
    # Format named (or this is the first record): the format decides; else the first record decided it.
    why = f"format {fmt}" if first_where == record.where else f"as {first_where} says"
    raise record.fail(
        f"a {this} record in a file of {file_kind} records ({why}); a batch holds one kind, "
        "so import rankings and pairs into separate batches",
        "responses" if is_ranking else "",
    )


# Field checks -------------------------------------------------------------------------


def _text(record: Record, field: str, *, required: bool = True, allow_empty: bool = False) -> str:
    if field not in record.data or (not required and record.data[field] is None):
        if required:
            raise record.fail("missing", field)
        return ""
    value = record.data[field]
    if not isinstance(value, str):
        raise record.fail(f"expected a string, got {_type_name(value)}", field)
    _check_length(record, field, value)
    if not allow_empty and not value.strip():
        raise record.fail("empty", field)
    return value.strip()


def _check_length(record: Record, field: str, text: str, what: str = "") -> None:
    """Refuse a text over ITEM_MAX_CHARS: a megabyte response cannot be read, and costs seconds to render."""
    limit = settings.ITEM_MAX_CHARS
    if len(text) > limit:
        raise record.fail(
            f"{what}{len(text):,} characters, more than the limit of {limit:,} per text (setting ITEM_MAX_CHARS)",
            field,
        )


def _messages(record: Record, field: str, value: list, last_role: str | None = None) -> list[dict]:
    try:
        messages = check_messages(value, last_role=last_role)
    except MessageError as exc:
        raise record.fail(str(exc), field) from None
    for number, message in enumerate(messages, start=1):
        _check_length(record, field, message["content"], f"message {number}: ")
    return [{"role": m["role"], "content": m["content"].strip()} for m in messages]


def _prompt(record: Record, field: str = "prompt") -> list[dict]:
    """A prompt string (one user turn) or a message list ending with the user's instruction."""
    value = record.data.get(field)
    if isinstance(value, list):
        return _messages(record, field, value, last_role="user")
    if field in record.data and value is not None and not isinstance(value, str):
        raise record.fail(f"expected a string or a list of messages, got {_type_name(value)}", field)
    return [{"role": "user", "content": _text(record, field)}]


def _response(record: Record, field: str) -> str:
    """A response string, or (TRL conversational) a list holding one assistant message."""
    value = record.data.get(field)
    if isinstance(value, list):
        messages = _messages(record, field, value)
        if len(messages) != 1 or messages[0]["role"] != "assistant":
            raise record.fail("expected one assistant message", field)
        return messages[0]["content"]
    return _text(record, field)


def _external_id(record: Record) -> str:
    for field in ("external_id", "id"):
        if field in record.data:
            value = record.data[field]
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise record.fail(f"expected a string or an integer, got {_type_name(value)}", field)
            external_id = str(value).strip()
            if not external_id:
                raise record.fail("empty", field)
            if len(external_id) > EXTERNAL_ID_MAX_LENGTH:
                raise record.fail(f"longer than {EXTERNAL_ID_MAX_LENGTH} characters", field)
            return external_id
    return str(record.number)


def _base_source(record: Record, fmt: str) -> dict:
    return {"format": fmt, record.where.split()[0]: record.number}


# Formats ------------------------------------------------------------------------------


def parse_alpacafarm(record: Record) -> Comparison:
    source = _base_source(record, "alpacafarm")
    for field in ("generator_1", "generator_2"):
        if record.data.get(field) is not None:
            source[field] = _text(record, field, allow_empty=True)
    return Comparison(
        external_id=_external_id(record),
        prompt=[{"role": "user", "content": _text(record, "instruction")}],
        prompt_input=_text(record, "input", required=False, allow_empty=True),
        response_1=_text(record, "output_1"),
        response_2=_text(record, "output_2"),
        source=source,
    )


def parse_plain(record: Record) -> Comparison:
    return Comparison(
        external_id=_external_id(record),
        prompt=_prompt(record),
        prompt_input=_text(record, "input", required=False, allow_empty=True),
        response_1=_response(record, "response_1"),
        response_2=_response(record, "response_2"),
        source=_base_source(record, "plain"),
    )


def parse_trl(record: Record) -> Comparison:
    return Comparison(
        external_id=_external_id(record),
        prompt=_prompt(record),
        response_1=_response(record, "chosen"),
        response_2=_response(record, "rejected"),
        chosen=1,
        source=_base_source(record, "trl"),
    )


def split_hh_dialogue(record: Record, field: str) -> tuple[list[dict], str]:
    """(prompt messages, last assistant turn) of one HH dialogue."""
    text = _text(record, field)
    parts = HH_TURN.split(record.data[field])
    if parts[0].strip():
        raise record.fail("text before the first 'Human:' turn", field)
    turns = [
        {"role": HH_ROLES[role], "content": content.strip()}
        for role, content in zip(parts[1::2], parts[2::2], strict=True)
    ]
    if not any(turn["role"] == "assistant" for turn in turns):
        raise record.fail(f"no '\\n\\nAssistant:' turn in {text[:60]!r}", field)
    if turns[-1]["role"] != "assistant":
        raise record.fail("the dialogue must end with an Assistant turn", field)
    prompt = turns[:-1]
    if not any(turn["role"] == "user" for turn in prompt):
        raise record.fail("no 'Human:' turn before the last Assistant turn", field)
    return prompt, turns[-1]["content"]


def parse_hh_pair(record: Record) -> Comparison:
    """Split an HH-RLHF pair into one prompt and two responses.

    Rule: each dialogue is cut into turns at "\\n\\nHuman:" / "\\n\\nAssistant:"; its last turn
    (which must be an Assistant turn) is the response, every turn before it the prompt. The
    item's prompt is the *chosen* dialogue's; the rejected response is the rejected dialogue's
    last Assistant turn. A few rows' dialogues differ before their last turn too (e.g. a
    "Human:" glued into an assistant turn without the blank line): they are imported by the
    same rule, with ``source["prompts_differ"] = True`` and the rejected dialogue's own prompt
    kept in ``source["rejected_prompt"]``. A last Assistant turn may be empty (the assistant
    said nothing, which HH sometimes prefers).
    """
    chosen_prompt, chosen = split_hh_dialogue(record, "chosen")
    rejected_prompt, rejected = split_hh_dialogue(record, "rejected")
    source = _base_source(record, "hh")
    if rejected_prompt != chosen_prompt:
        source["prompts_differ"] = True
        source["rejected_prompt"] = rejected_prompt
    return Comparison(
        external_id=_external_id(record),
        prompt=chosen_prompt,
        response_1=chosen,
        response_2=rejected,
        chosen=1,
        source=source,
    )


def _ranking_responses(record: Record, rules: RankingRules) -> list[str]:
    value = record.data.get("responses")
    if not isinstance(value, list):
        raise record.fail(
            f"expected a list of {MIN_RANKING_SIZE} to {MAX_RANKING_SIZE} strings, got {_type_name(value)}", "responses"
        )
    if not MIN_RANKING_SIZE <= len(value) <= MAX_RANKING_SIZE:
        raise record.fail(
            f"{len(value)} responses; a ranking has {MIN_RANKING_SIZE} to {MAX_RANKING_SIZE} "
            "(two responses are a pairwise item: use the plain format)",
            "responses",
        )
    if rules.size is not None and len(value) != rules.size:
        raise record.fail(
            f"{len(value)} responses, but the batch ranks {rules.size} per item (its ranking size)", "responses"
        )
    responses = []
    for number, text in enumerate(value, start=1):
        if not isinstance(text, str):
            raise record.fail(f"response {number}: expected a string, got {_type_name(text)}", "responses")
        _check_length(record, "responses", text, f"response {number}: ")
        if not text.strip():
            raise record.fail(f"response {number}: empty", "responses")
        responses.append(text.strip())
    return responses


TIES_HINT = "the batch does not allow ties (a new batch does with --allow-ties)"


def _known_order(record: Record, size: int, rules: RankingRules) -> tuple[Tiers | None, dict]:
    """The record's known order as tiers (from `ranking` or `scores`), and what to keep of it in the source."""
    has_ranking = record.data.get("ranking") is not None
    has_scores = record.data.get("scores") is not None
    if has_ranking and has_scores:
        raise record.fail("give either ranking or scores, not both", "scores")
    if has_ranking:
        value = record.data["ranking"]
        if not isinstance(value, list):
            raise record.fail(f"expected a list of response numbers best first, got {_type_name(value)}", "ranking")
        tiers = [place if isinstance(place, list) else [place] for place in value]
        try:
            return check_tiers(tiers, size, rules.allow_ties), {}
        except RankingError as exc:
            message = str(exc).replace("ties are not allowed in this batch", f"a nested list is a tie, and {TIES_HINT}")
            raise record.fail(f"{message} (response numbers are 1-based)", "ranking") from None
    if has_scores:
        value = record.data["scores"]
        if not isinstance(value, list) or len(value) != size:
            raise record.fail(f"expected a list of {size} numbers, one per response", "scores")
        for number, score in enumerate(value, start=1):
            if isinstance(score, float) and not math.isfinite(score):
                spelled = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(score)]  # as JSON writes it
                raise record.fail(f"response {number}: expected a finite number, got {spelled}", "scores")
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise record.fail(f"response {number}: expected a number, got {_type_name(score)}", "scores")
        tiers = tiers_from_scores(value)
        tie = next((tier for tier in tiers if len(tier) > 1), None)
        if tie and not rules.allow_ties:
            numbers = " and ".join(map(str, tie))
            raise record.fail(f"responses {numbers} have equal scores, a tie, and {TIES_HINT}", "scores")
        if len(tiers) == 1:
            raise record.fail(f"all {size} responses have equal scores, which says nothing about their order", "scores")
        return tiers, {"scores": value}
    return None, {}


def parse_ranking(record: Record, rules: RankingRules | None = None) -> Comparison:
    rules = rules or RankingRules()
    prompt = _prompt(record)
    responses = _ranking_responses(record, rules)
    tiers, kept = _known_order(record, len(responses), rules)
    source = {**_base_source(record, "ranking"), **kept}
    if tiers is not None:
        source["ranking"] = tiers
    return Comparison(
        external_id=_external_id(record),
        prompt=prompt,
        prompt_input=_text(record, "input", required=False, allow_empty=True),
        response_1=responses[0],
        response_2=responses[1],
        more_responses=responses[2:],
        tiers=tiers,
        source=source,
    )


PARSERS: dict[str, Callable[[Record], Comparison]] = {
    "alpacafarm": parse_alpacafarm,
    "hh": parse_hh_pair,
    "trl": parse_trl,
    "plain": parse_plain,
    "ranking": parse_ranking,
}


# The model field that keeps each record field (the admin's item form names these in its errors).
ITEM_FIELD_OF_RECORD_FIELD = {"input": "prompt_input", "responses": "more_responses", "id": "external_id"}


def item_errors(item: Item) -> dict[str, str]:
    """What an import would refuse in `item`'s fields, by model field ({} when none): the admin's item form checks
    an item by the importer's rules, so no item reaches an annotator that an import would not have written. A stored
    prompt is always a message list ending with the user's turn (what the importer makes of a string)."""
    if not isinstance(item.prompt, list):
        return {"prompt": f"expected a list of {{role, content}} messages, got {_type_name(item.prompt)}"}
    more = item.more_responses
    if not isinstance(more, list):
        return {"more_responses": f"expected a list of strings, got {_type_name(more)}"}
    data = {"external_id": item.external_id, "prompt": item.prompt, "input": item.prompt_input}
    batch = item.batch
    try:
        if batch.is_ranking:
            data["responses"] = [item.response_1, item.response_2, *more]
            parse_ranking(Record(data, "item", 1), RankingRules(allow_ties=batch.allow_ties, size=batch.ranking_size))
        elif more:
            return {"more_responses": "a pairwise item has exactly two responses: leave this empty"}
        else:
            parse_plain(Record({**data, "response_1": item.response_1, "response_2": item.response_2}, "item", 1))
    except ImportFileError as exc:
        return {ITEM_FIELD_OF_RECORD_FIELD.get(exc.field, exc.field): exc.message}
    return {}


def parse_record(record: Record, fmt: str, rules: RankingRules | None = None) -> Comparison:
    """One record of format `fmt`, checked as a file's record is (also for comparisons built in code)."""
    comparison = parse_ranking(record, rules) if fmt in RANKING_FORMATS else PARSERS[fmt](record)
    comparison.where = record.where
    comparison.id_field = next((f for f in ("external_id", "id") if f in record.data), "")
    return comparison


def iter_comparisons(
    source: str | IO[bytes], fmt: str = "auto", rules: RankingRules | None = None
) -> Iterator[tuple[str, Comparison]]:
    """(format, comparison) for every record, checked as it is read; ImportFileError at the first bad one.

    At most IMPORT_MAX_ROWS records; a duplicate external id within the file is refused, and so is a record of
    the other kind (ranking vs pairwise) than the file's first. `rules` are the target batch's for rankings.
    """
    if fmt != "auto" and fmt not in PARSERS:
        raise ImportFileError(f"unknown format {fmt!r}; choose auto, {', '.join(FORMATS)}")
    max_rows = settings.IMPORT_MAX_ROWS
    seen: dict[str, str] = {}
    first_where = ""
    for count, record in enumerate(iter_records(source), start=1):
        if count > max_rows:
            raise record.fail(f"more than {max_rows:,} records, the import limit (setting IMPORT_MAX_ROWS)")
        if fmt == "auto":
            fmt = detect_format(record)
        first_where = first_where or record.where
        _check_same_kind(record, fmt, first_where)
        comparison = parse_record(record, fmt, rules)
        if comparison.external_id in seen:
            raise record.fail(
                f"duplicate external id {comparison.external_id!r} (also at {seen[comparison.external_id]})",
                comparison.id_field,
            )
        seen[comparison.external_id] = record.where
        yield fmt, comparison


def parse_comparisons(source: str | IO[bytes], fmt: str = "auto") -> tuple[str, list[Comparison]]:
    """The file's format and its comparisons, all checked and held in memory (small files: the demo, evaluation)."""
    found, comparisons = fmt, []
    for found, comparison in iter_comparisons(source, fmt):  # noqa: B007 (the last format found is returned)
        comparisons.append(comparison)
    if not comparisons:
        raise ImportFileError("the file holds no records")
    return found, comparisons


# Writing ------------------------------------------------------------------------------


def import_user():
    """The user that imported judgments belong to; it cannot log in."""
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=settings.IMPORT_USERNAME, defaults={"is_active": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def item_for(batch: Batch, comparison: Comparison, rng: random.Random) -> Item:
    """The (unsaved) item of a comparison; a known answer puts the responses in random order and becomes gold."""
    response_1, response_2, gold = comparison.response_1, comparison.response_2, None
    if comparison.is_ranking:
        # The file's order is kept (the known order stays in source["ranking"]): the HIT shuffles what it shows.
        return Item(
            batch=batch,
            external_id=comparison.external_id,
            prompt=comparison.prompt,
            prompt_input=comparison.prompt_input,
            response_1=response_1,
            response_2=response_2,
            more_responses=comparison.more_responses,
            source=comparison.source or {},
        )
    if comparison.chosen is not None:
        # Shuffle so the preferred answer is not always response 1.
        chosen_first = rng.random() < 0.5
        if not chosen_first:
            response_1, response_2 = response_2, response_1
        gold = Rating.RESPONSE_1_BETTER if chosen_first else Rating.RESPONSE_2_BETTER
    return Item(
        batch=batch,
        external_id=comparison.external_id,
        prompt=comparison.prompt,
        prompt_input=comparison.prompt_input,
        response_1=response_1,
        response_2=response_2,
        source=comparison.source or {},
        gold=gold,
    )


# Called with (phase, records so far): "checking" every CHUNK_SIZE records, then "writing" once.
Progress = Callable[[str, int], None]


# What an import may set on the batch it creates, with how people call it, and the limits (the form, the command).
NEW_BATCH_SETTINGS = {"guidelines": "guidelines", "overlap": "overlap", "samples_per_hit": "samples per HIT"}


def batch_setting_errors(batch_settings: dict) -> dict[str, str]:
    """Field -> what is wrong with a new batch's settings (None or "" means the batch default)."""
    errors = {}
    guidelines = batch_settings.get("guidelines")
    if guidelines and len(guidelines) > MAX_GUIDELINES_CHARS:
        errors["guidelines"] = f"guidelines must be at most {MAX_GUIDELINES_CHARS} characters, got {len(guidelines)}"
    for name, high in (("overlap", MAX_OVERLAP), ("samples_per_hit", MAX_SAMPLES_PER_HIT)):
        value = batch_settings.get(name)
        if value is not None and not (isinstance(value, int) and 1 <= value <= high):
            errors[name] = f"{NEW_BATCH_SETTINGS[name]} must be a whole number in [1, {high}], got {value!r}"
    return errors


def import_comparisons(
    source: ImportSource,
    batch_name: str,
    fmt: str = "auto",
    as_judgments: bool = False,
    created_by=None,
    seed: int | None = None,
    active: bool | None = None,
    progress: Progress | None = None,
    allow_ties: bool = False,
    batch_settings: dict | None = None,
) -> ImportResult:
    """Import every comparison of the file into batch `batch_name` (created if missing), or nothing.

    `batch_settings` (guidelines, overlap, samples_per_hit: NEW_BATCH_SETTINGS) set up a new batch; an existing one
    keeps its own (they are changed on its admin page), and giving them for it is an error.

    `active` sets whether annotators get the batch; None keeps an existing batch as it is and makes a new one
    inactive when the import stores its answers as judgments (there is nothing left to ask), active otherwise.
    A ranking file makes a ranking batch; `allow_ties` lets a new one take (and its annotators give) ties. An
    existing batch keeps its kind, ranking size and ties setting, and the file must fit them.

    The file is streamed twice: once to check every record (outside any transaction, reporting progress), then
    once more to write it in one transaction, CHUNK_SIZE items at a time. Memory stays at one chunk whatever the
    file's size, and a bad file never holds the database's write lock while it is read.
    """
    batch_name = (batch_name or "").strip()
    if not batch_name:
        raise ImportFileError("a batch name is needed")
    if len(batch_name) > Batch._meta.get_field("name").max_length:
        raise ImportFileError("the batch name is too long")
    existing = Batch.objects.filter(name=batch_name).first()
    batch_settings = {name: value for name, value in (batch_settings or {}).items() if value not in (None, "")}
    if unknown := set(batch_settings) - set(NEW_BATCH_SETTINGS):
        raise ImportFileError(f"unknown batch settings: {', '.join(sorted(unknown))}")
    if errors := batch_setting_errors(batch_settings):
        raise ImportFileError("; ".join(errors.values()))
    if existing is not None and batch_settings:
        given = ", ".join(NEW_BATCH_SETTINGS[name] for name in batch_settings)
        raise ImportFileError(
            f"batch {batch_name!r} exists, and {given} can only be set for a new batch (change an existing batch's "
            "on its admin page)"
        )
    if existing is not None and allow_ties and not existing.allow_ties:
        raise ImportFileError(f"batch {batch_name!r} exists and does not allow ties; --allow-ties is for a new batch")
    if existing is not None:
        rules = RankingRules(existing.allow_ties, existing.ranking_size if existing.is_ranking else None)
    else:
        rules = RankingRules(allow_ties)
    count, found = 0, fmt
    sizes: set[int] = set()
    unknown_order = ""  # the first ranking record without a known order
    with open_source(source) as stream:
        for count, (found, comparison) in enumerate(iter_comparisons(stream, fmt, rules), start=1):  # noqa: B007
            if comparison.is_ranking:
                sizes.add(comparison.size)
                if comparison.tiers is None and not unknown_order:
                    unknown_order = comparison.where
            if progress and count % CHUNK_SIZE == 0:
                progress("checking", count)
    if count == 0:
        raise ImportFileError("the file holds no records")
    fmt = found
    kind = kind_of_format(fmt)
    if existing is not None and existing.kind != kind:
        raise ImportFileError(
            f"batch {batch_name!r} is a {existing.kind} batch and this file holds {kind} records; "
            "a batch holds one kind, so import into another batch"
        )
    if as_judgments and fmt in RANKING_FORMATS and unknown_order:
        raise ImportFileError("--as-judgments needs every record's order; this one has none", unknown_order, "ranking")
    if as_judgments and fmt not in KNOWN_PREFERENCE_FORMATS + RANKING_FORMATS:
        raise ImportFileError(
            f"--as-judgments needs a file with a known preference ({', '.join(KNOWN_PREFERENCE_FORMATS)}, or "
            f"ranking with ranking or scores); {fmt} has none"
        )
    if progress:
        progress("writing", count)
    rng = random.Random(seed)
    new_batch = {"kind": kind, **batch_settings}
    if kind == Batch.Kind.RANKING:
        # K is fixed for the batch when every item has the same K; otherwise it is per item.
        new_batch.update(ranking_size=sizes.pop() if len(sizes) == 1 else None, allow_ties=allow_ties)
    try:
        with transaction.atomic(), open_source(source) as stream:
            comparisons = (comparison for _fmt, comparison in iter_comparisons(stream, fmt, rules))
            result = _write(comparisons, batch_name, fmt, as_judgments, created_by, rng, active, new_batch)
            # The first annotators of the batch must not meet statistics that say the item table is empty.
            transaction.on_commit(lambda: analyze_grown(IMPORT_TABLES))
            return result
    except IntegrityError as exc:
        # Only reachable when another import writes the same batch at the same moment.
        raise ImportFileError(f"the batch changed while importing ({exc}); nothing was imported") from None


def _write(
    comparisons: Iterable[Comparison],
    batch_name: str,
    fmt: str,
    as_judgments: bool,
    created_by,
    rng: random.Random,
    active: bool | None,
    new_batch: dict | None = None,
) -> ImportResult:
    new_batch_active = (not as_judgments) if active is None else active
    batch, batch_created = Batch.objects.get_or_create(
        name=batch_name, defaults={"created_by": created_by, "active": new_batch_active, **(new_batch or {})}
    )
    if not batch_created and active is not None and batch.active != active:
        batch.active = active
        batch.save(update_fields=["active"])
    item_count = judgment_count = 0
    for chunk in _chunks(comparisons, CHUNK_SIZE):
        items, judgments = add_items(batch, chunk, rng, as_judgments)
        item_count += len(items)
        judgment_count += judgments
    return ImportResult(
        count=item_count,
        batch=batch,
        format=fmt,
        batch_created=batch_created,
        judgment_count=judgment_count,
        judgments_by=settings.IMPORT_USERNAME if judgment_count else "",
    )


def _chunks(values: Iterable[Comparison], size: int) -> Iterator[list[Comparison]]:
    iterator = iter(values)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def add_items(
    batch: Batch, comparisons: list[Comparison], rng: random.Random, as_judgments: bool = False
) -> tuple[list[Item], int]:
    """Write checked comparisons into `batch` (in the caller's transaction): the items, and how many judgments.

    The one write path of imports and of items made in code ("Send to annotators"): an external id the batch
    already has is refused.
    """
    wanted = {c.external_id: c for c in comparisons}
    existing = list(
        batch.items.filter(external_id__in=list(wanted)).order_by("pk").values_list("external_id", flat=True)[:1]
    )
    if existing:
        clash = wanted[existing[0]]
        default = "" if clash.id_field else f" (without an id, a record's id is its {clash.where.split()[0]} number)"
        raise ImportFileError(
            f"duplicate external id {clash.external_id!r}: batch {batch.name!r} already has an item with it" + default,
            clash.where,
            clash.id_field,
        )
    items = [item_for(batch, comparison, rng) for comparison in comparisons]
    for start in range(0, len(items), CHUNK_SIZE):
        Item.objects.bulk_create(items[start : start + CHUNK_SIZE])
    if not as_judgments:
        return items, 0
    if any(item.pk is None for item in items):  # databases that cannot return ids from bulk inserts
        ids = dict(batch.items.values_list("external_id", "pk"))
        for item in items:
            item.pk = ids[item.external_id]
    user = import_user()
    judgments = [
        Judgment(item=item, annotator=user, ranking=comparison.tiers)
        if comparison.is_ranking
        else Judgment(item=item, annotator=user, rating=item.gold)
        for item, comparison in zip(items, comparisons, strict=True)
    ]
    Judgment.objects.bulk_create(judgments, batch_size=CHUNK_SIZE)
    return items, len(judgments)
