"""Preference data sets out: streamed exports in the formats trainers load.

Every format is produced by generators over one queryset of judgments, read in
chunks of CHUNK_SIZE rows (`.iterator()`; a server-side cursor on PostgreSQL) and
ordered by item, so memory stays flat however many judgments there are.

Formats
- ``trl``: one JSON line per preference pair, TRL's standard preference format:
  ``prompt``, ``chosen``, ``rejected`` as plain strings, plus ``margin`` (the loss
  margin our trainer uses, `rlhf.preferences.loss_margin`: 1.0 for a clear pair, 0.0 for a
  slight or ranked one), ``strength`` ("clear" when the mean rating toward the winner is >= 1.5), ``batch``,
  ``item_id`` (the item's external id), ``item_pk`` and ``n_judgments``.
  The prompt string is the instruction, followed by "\\n\\n" and the input when the
  item has one. A multi-turn prompt is written as a transcript in the lecture's
  notation, one turn per paragraph: ``<User> ...\\n\\n<Assistant> ...\\n\\n<User> ...``
  (no "Human:"/"Assistant:" HH markers, and nothing appended after the last turn).
- ``trl-conversational``: the same rows with ``prompt`` as the message list
  (``[{"role", "content"}, ...]``, input joined to the last user turn) and
  ``chosen`` / ``rejected`` as one-message assistant lists.
- ``raw``: one JSON line per judgment (see RAW_COLUMNS); ``csv``: the same rows as CSV.
- ``parquet``: the ``trl`` or ``raw`` table, written in record batches.
- ``rankings``: one JSON line per ranking (ranking batches only; pairwise items are left out): ``prompt`` (as in
  ``trl``), ``responses`` (the item's K responses, in the item's order), ``ranking`` (tiers of 1-based response
  numbers, best first; a tier of several is a tie, `rlhf.rankings`), ``annotator`` (pseudonym or username; null
  for an aggregated row), ``n_judgments``, ``batch``, ``item_id``, ``item_pk``.

Ranking items in the pairwise formats (``trl``, ``trl-conversational``, parquet ``trl``): each ranking becomes its
pairs (`rlhf.rankings.pairs_of`) under ``pairs``: ``all`` (the C(K,2) pairs, each weighted 1/C(K,2), the lecture's
objective), ``adjacent`` (the K-1 neighbour pairs) or ``sample:M`` (M pairs drawn at random, seeded by the judgment
so the same export gives the same file). Tied responses give no pair. Such a pair has ``margin`` 0.0 (a ranking says
which is better, not by how much) and ``strength`` "ranked". When the export holds any
ranking, every row of these formats gets a ``weight`` column: the pair's weight (a ranking's weights sum to 1), 1.0
for a pair from a pairwise judgment. Exports without rankings are exactly as before. The ``raw`` / ``csv`` tables
describe pairwise judgments (a rating each) and leave ranking judgments out: those are in ``rankings``.

Aggregation (``aggregate``) follows `rlhf.preferences`, the rule reward-model training uses too:
``each`` gives one pair per judgment; ``majority`` one pair per item in the direction most
judgments took (items with a tie are dropped); ``agreed`` one pair per item whose judgments
all point the same way (others dropped; combine with ``min_judgments=2`` to require an actual
second opinion). The raw table always has one row per judgment: there, ``majority`` and
``agreed`` only decide which items are kept.

Several annotators' rankings of one item (``ranking_aggregate``, `rlhf.rankings.RANKING_AGGREGATIONS`): ``each``
keeps one ranking per judgment; ``borda`` combines them into one by Borda count (each ranking gives a response
K - rank points, ties sharing the mean; responses are ordered by total points, equal totals tie). It applies to the
``rankings`` format and to the pairs made from rankings.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import groupby
from typing import IO, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from annotate.models import Batch, Judgment, Rating, simulated_user_ids
from arbiter.streams import ChunkSink
from rlhf.options import OptionError, check_options, option
from rlhf.preferences import AGGREGATION_CHOICES, item_direction, item_preferences, loss_margin
from rlhf.prompts import join_input, lecture_transcript
from rlhf.rankings import (
    RANKING_AGGREGATION_CHOICES,
    RankingError,
    Tiers,
    item_rankings,
    pairs_of,
    parse_pair_mode,
)

CHUNK_SIZE = 2000
FORMATS = ("trl", "trl-conversational", "raw", "csv", "parquet", "rankings")
PARQUET_TABLES = ("trl", "raw")
# Bytes gathered before a chunk is handed on (one HTTP write or file write).
FLUSH_BYTES = 256 * 1024

TRL_COLUMNS = ("prompt", "chosen", "rejected", "margin", "strength", "batch", "item_id", "item_pk", "n_judgments")
RAW_COLUMNS = (
    "batch",
    "item_id",
    "item_pk",
    "prompt",
    "response_1",
    "response_2",
    "rating",
    "rating_label",
    "chosen",
    "swapped",
    "annotator",
    "time_seconds",
    "created_at",
    "updated_at",
    "hit_id",
    "judgment_id",
)
RATING_LABELS = dict(Rating.choices)

# What one judgment row carries from the database (no model instances: 1M rows must stream fast).
# The prompt comes as JSON text, parsed once per item rather than once per judgment.
_TRL_FIELDS = (
    "id",
    "item_id",
    "rating",
    "prompt_json",
    "item__external_id",
    "item__prompt_input",
    "item__response_1",
    "item__response_2",
    "item__batch__name",
    "ranking",
    "item__more_responses",
)
_RAW_FIELDS = (
    *_TRL_FIELDS,
    "annotator_id",
    "annotator__username",
    "hit_id",
    "swapped",
    "time_ms",
    "created_at",
    "updated_at",
)


class ExportError(ValueError):
    """Export options that cannot be honoured (the message names the option)."""


def render_prompt(messages: list[dict], prompt_input: str = "") -> str:
    """The prompt as one plain string (see the module docstring for the layout)."""
    return lecture_transcript(join_input(messages, prompt_input))


def annotator_pseudonym(user_id: int) -> str:
    """A stable name that does not reveal the user: the same in every export of this site."""
    digest = hmac.new(settings.SECRET_KEY.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()
    return f"annotator-{digest[:10]}"


def _as_datetime(value: date | datetime | str | None, end_of_day: bool) -> datetime | None:
    """A bound of the date range; a bare date covers that whole day."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise ExportError(f"Cannot read {value!r} as a date (YYYY-MM-DD) or date-time (ISO 8601).") from None
    if not isinstance(value, datetime):
        value = datetime.combine(value + timedelta(days=1) if end_of_day else value, time.min)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_current_timezone())
    return value


class ExportOptionError(ExportError, OptionError):
    """An export option out of bounds; `name` is the option's (forms and the API put the message there)."""


def check_date_range(since: date | datetime | str | None, until: date | datetime | str | None) -> None:
    """ExportOptionError on `until` unless the range holds some time: since (inclusive) before until (a bare date as
    `until` includes that day). The rule of ExportFilters, so the form, the command and the API refuse alike."""
    bounds = []
    for name, value, end_of_day in (("since", since, False), ("until", until, True)):
        try:
            bounds.append(_as_datetime(value, end_of_day))
        except ExportError as exc:
            raise ExportOptionError(name, f"{name}: {exc}") from None
    start, end = bounds
    if start and end and start >= end:
        raise ExportOptionError("until", f"until ({until}) must not be before since ({since}).")


# Pairs from a ranking say they came from one; their margin is rlhf.preferences.loss_margin's for it (0.0).
RANKED_STRENGTH = "ranked"


@dataclass
class ExportFilters:
    """Which judgments go into an export, and how they are combined per item.

    `since` is inclusive and `until` exclusive, on the judgment's creation time; a bare
    date as `until` includes that day. Annotators are named by username. The `option(...)` fields
    are the ones forms, the command and the API derive; build from what a user gave with from_options().
    """

    batches: list[str] | None = None
    since: date | datetime | str | None = None
    until: date | datetime | str | None = None
    annotators: list[str] | None = None
    exclude_annotators: list[str] = field(default_factory=list)
    min_judgments: int = option(1, low=1, high=1000, help="Only items with at least this many judgments.")
    aggregate: str = option("each", choices=AGGREGATION_CHOICES)
    exclude_flagged: bool = option(False, label="Exclude flagged annotators", help="As the quality page flags them.")
    usernames: bool = option(False, label="Usernames instead of pseudonyms", help="Raw, csv and rankings only.")
    include_simulated: bool = option(
        False,
        label="Include simulated annotators",
        help="Their judgments (annotate.simulation) are left out unless asked for; raw rows name them simulated-<n>.",
    )
    ranking_aggregate: str = option(
        "each",
        label="Rankings aggregated",
        choices=RANKING_AGGREGATION_CHOICES,
        help="Ranking batches: one ranking per annotator, or one per item by Borda count.",
    )
    pairs: str = option(
        "all",
        label="Pairs per ranking",
        help="Ranking batches in the pairwise formats: all (C(K,2) pairs, weight 1/C(K,2) each), adjacent (the K-1 "
        "neighbour pairs) or sample:M (M random pairs); a ranking's weights sum to 1.",
    )

    def __post_init__(self) -> None:
        try:
            check_options(self)
            parse_pair_mode(self.pairs)
            check_date_range(self.since, self.until)
        except ExportOptionError:
            raise
        except OptionError as exc:
            raise ExportOptionError(exc.name, str(exc)) from None
        except RankingError as exc:
            raise ExportOptionError("pairs", str(exc)) from None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ExportFilters:
        """The filters from what a form, the command or an API call gave, under the field names.

        Missing, None and empty values keep the default; names come as a list (of names or Batch rows) or as
        comma-separated text. Refuses bad options with ExportOptionError naming the option.
        """

        def names(value: Any) -> list[str]:
            if isinstance(value, str):
                value = value.split(",")
            return [n for n in (str(getattr(v, "name", v)).strip() for v in value or ()) if n]

        given = {k: v for k, v in options.items() if k in cls.__dataclass_fields__ and v not in (None, "")}
        for key in ("batches", "annotators", "exclude_annotators"):
            if key in given:
                given[key] = names(given[key]) or (None if key != "exclude_annotators" else [])
        return cls(**given)

    def judgments(self) -> QuerySet[Judgment]:
        """The judgments to export, ordered by item (aggregation relies on it)."""
        self.__post_init__()  # the fields may have changed since
        judgments = Judgment.objects.kept()  # a judgment staff marked wrong is left out until it is unmarked
        if not self.include_simulated:
            judgments = judgments.by_people()
        if self.batches:
            names = list(self.batches)
            found = set(Batch.objects.filter(name__in=names).values_list("name", flat=True))
            missing = [n for n in names if n not in found]
            if missing:
                raise ExportError(f"No batch named {', '.join(repr(n) for n in missing)}.")
            judgments = judgments.filter(item__batch__name__in=names)
        since, until = _as_datetime(self.since, False), _as_datetime(self.until, True)
        if since:
            judgments = judgments.filter(created_at__gte=since)
        if until:
            judgments = judgments.filter(created_at__lt=until)
        if self.annotators:
            judgments = judgments.filter(annotator_id__in=self._user_ids(self.annotators))
        if self.exclude_annotators:
            judgments = judgments.exclude(annotator_id__in=self._user_ids(self.exclude_annotators))
        if self.exclude_flagged:
            from annotate.quality import flagged_annotators

            judgments = judgments.exclude(annotator_id__in=list(flagged_annotators(self.batches)))
        if self.min_judgments > 1:
            enough = (
                judgments.order_by()
                .values("item_id")
                .annotate(n=Count("pk"))
                .filter(n__gte=self.min_judgments)
                .values("item_id")
            )
            judgments = judgments.filter(item_id__in=enough)
        return judgments.order_by("item_id", "id")

    @staticmethod
    def _user_ids(usernames: Iterable[str]) -> list[int]:
        usernames = list(usernames)
        found = dict(get_user_model().objects.filter(username__in=usernames).values_list("username", "pk"))
        missing = [u for u in usernames if u not in found]
        if missing:
            raise ExportError(f"No annotator named {', '.join(repr(u) for u in missing)}.")
        return list(found.values())


def _item_groups(judgments: QuerySet[Judgment], fields: tuple[str, ...]) -> Iterator[list[dict]]:
    """The judgments of one item at a time (a few rows; never the whole export).

    The first row of each group carries the parsed prompt as "prompt".
    """
    judgments = judgments.annotate(prompt_json=Cast("item__prompt", TextField()))
    rows = judgments.values(*fields).iterator(chunk_size=CHUNK_SIZE)
    for _item_id, group in groupby(rows, key=lambda row: row["item_id"]):
        group = list(group)
        group[0]["prompt"] = json.loads(group[0]["prompt_json"])
        yield group


@dataclass(frozen=True, slots=True)
class _Pair:
    """One row of a pairwise format: chosen and rejected response numbers (item orientation)."""

    chosen: int
    rejected: int
    margin: float
    strength: str
    n_judgments: int
    weight: float = 1.0


def _item_rankings(group: list[dict], aggregate: str) -> list[tuple[Tiers, dict | None]]:
    """The rankings of one ranking item (rlhf.rankings.item_rankings): (tiers, its judgment's row) per judgment, or one
    Borda ranking (row None)."""
    size = 2 + len(group[0]["item__more_responses"])
    rankings = item_rankings([row["ranking"] for row in group], size, aggregate)
    return [(tiers, None if index is None else group[index]) for tiers, index in rankings]


def _item_pairs(group: list[dict], filters: ExportFilters) -> list[_Pair]:
    """The pairs of one item: from its ratings (rlhf.preferences), or from its rankings (rlhf.rankings.pairs_of)."""
    first = group[0]
    if first["ranking"] is None:
        return [
            _Pair(p.winner, p.loser, loss_margin(p.strength), p.strength, p.n_judgments)
            for p in item_preferences([row["rating"] for row in group], filters.aggregate)
        ]
    pairs = []
    for tiers, row in _item_rankings(group, filters.ranking_aggregate):
        # Seeded by item and judgment: sample:M gives the same pairs every time the same data is exported.
        rng = random.Random(f"{first['item_id']}:{row['id'] if row else 'borda'}")
        n_judgments = 1 if row else len(group)
        for better, worse, weight in pairs_of(tiers, filters.pairs, rng):
            pairs.append(_Pair(better, worse, loss_margin(RANKED_STRENGTH), RANKED_STRENGTH, n_judgments, weight))
    return pairs


def _response_texts(first: dict) -> list[str]:
    return [first["item__response_1"], first["item__response_2"], *(first["item__more_responses"] or [])]


def _trl_groups(filters: ExportFilters, judgments: QuerySet | None) -> Iterator[tuple[dict, list[_Pair]]]:
    for group in _item_groups(filters.judgments() if judgments is None else judgments, _TRL_FIELDS):
        yield group[0], _item_pairs(group, filters)


def has_rankings(judgments: QuerySet[Judgment]) -> bool:
    """Whether an export holds ranking judgments (then its pairwise rows carry a weight)."""
    return judgments.filter(ranking__isnull=False).exists()


def _prompt_of(first: dict, conversational: bool) -> Any:
    if conversational:
        return join_input(first["prompt"], first["item__prompt_input"])
    return render_prompt(first["prompt"], first["item__prompt_input"])


def _weighted(judgments: QuerySet | None, filters: ExportFilters, weighted: bool | None) -> bool:
    if weighted is not None:
        return weighted
    return has_rankings(filters.judgments() if judgments is None else judgments)


def trl_rows(
    filters: ExportFilters,
    conversational: bool = False,
    judgments: QuerySet | None = None,
    weighted: bool | None = None,
) -> Iterator[dict]:
    """Preference pairs, one per judgment or one per item, and a ranking's pairs (see the module docstring).

    `weighted` adds the ``weight`` column; None: when the judgments hold any ranking.
    """
    weighted = _weighted(judgments, filters, weighted)
    for first, pairs in _trl_groups(filters, judgments):
        prompt = _prompt_of(first, conversational)
        texts = _response_texts(first)
        for pair in pairs:
            chosen, rejected = texts[pair.chosen - 1], texts[pair.rejected - 1]
            if conversational:
                chosen = [{"role": "assistant", "content": chosen}]
                rejected = [{"role": "assistant", "content": rejected}]
            row = {
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "margin": pair.margin,
                "strength": pair.strength,
                "batch": first["item__batch__name"],
                "item_id": first["item__external_id"],
                "item_pk": first["item_id"],
                "n_judgments": pair.n_judgments,
            }
            if weighted:
                row["weight"] = pair.weight
            yield row


def trl_lines(
    filters: ExportFilters,
    conversational: bool = False,
    judgments: QuerySet | None = None,
    weighted: bool | None = None,
) -> Iterator[str]:
    """trl_rows() as JSON lines, byte for byte what json.dumps gives for each row.

    The fast path of the big exports: each item's texts are encoded once, not once per judgment.
    """
    weighted = _weighted(judgments, filters, weighted)
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    for first, pairs in _trl_groups(filters, judgments):
        if not pairs:
            continue
        prompt = dumps(_prompt_of(first, conversational))
        responses = [dumps(text) for text in _response_texts(first)]
        if conversational:
            responses = [f'[{{"role": "assistant", "content": {text}}}]' for text in responses]
        tail = (
            f'"batch": {dumps(first["item__batch__name"])}, "item_id": {dumps(first["item__external_id"])}, '
            f'"item_pk": {first["item_id"]}, "n_judgments": '
        )
        for pair in pairs:
            weight = f', "weight": {pair.weight!r}' if weighted else ""
            yield (
                f'{{"prompt": {prompt}, "chosen": {responses[pair.chosen - 1]}, '
                f'"rejected": {responses[pair.rejected - 1]}, '
                f'"margin": {pair.margin!r}, "strength": "{pair.strength}", {tail}{pair.n_judgments}{weight}}}\n'
            )


def ranking_rows(filters: ExportFilters, judgments: QuerySet | None = None) -> Iterator[dict]:
    """One row per ranking (per judgment, or per item with borda) of the ranking items; pairwise items are skipped."""
    names = _AnnotatorNames(filters)
    judgments = filters.judgments() if judgments is None else judgments
    for group in _item_groups(judgments.filter(ranking__isnull=False), _RAW_FIELDS):
        first = group[0]
        prompt = render_prompt(first["prompt"], first["item__prompt_input"])
        responses = _response_texts(first)
        for tiers, row in _item_rankings(group, filters.ranking_aggregate):
            annotator = None
            if row is not None:
                annotator = names.of(row)
            yield {
                "prompt": prompt,
                "responses": responses,
                "ranking": tiers,
                "annotator": annotator,
                "n_judgments": 1 if row else len(group),
                "batch": first["item__batch__name"],
                "item_id": first["item__external_id"],
                "item_pk": first["item_id"],
            }


class _AnnotatorNames:
    """An export row's annotator: a pseudonym (or the username when asked); a simulated annotator always by its
    username (simulated-<n>), so the file says which judgments were simulated."""

    def __init__(self, filters: ExportFilters) -> None:
        self.usernames = filters.usernames
        # Without include_simulated no simulated row comes; with it, their ids are read on the first row.
        self.simulated: set[int] | None = None if filters.include_simulated else set()
        self.names: dict[int, str] = {}

    def of(self, row: dict) -> str:
        user_id = row["annotator_id"]
        if user_id not in self.names:
            if self.simulated is None:
                self.simulated = simulated_user_ids()
            plain = self.usernames or user_id in self.simulated
            self.names[user_id] = row["annotator__username"] if plain else annotator_pseudonym(user_id)
        return self.names[user_id]


def raw_rows(filters: ExportFilters, judgments: QuerySet | None = None) -> Iterator[dict]:
    """One row per judgment, in the item's orientation."""
    names = _AnnotatorNames(filters)
    judgments = filters.judgments() if judgments is None else judgments
    # A ranking has no rating: ranking judgments are in the rankings format.
    for group in _item_groups(judgments.filter(rating__isnull=False), _RAW_FIELDS):
        if filters.aggregate != "each" and item_direction([r["rating"] for r in group], filters.aggregate) is None:
            continue
        first = group[0]
        prompt = render_prompt(first["prompt"], first["item__prompt_input"])
        for row in group:
            yield {
                "batch": row["item__batch__name"],
                "item_id": row["item__external_id"],
                "item_pk": row["item_id"],
                "prompt": prompt,
                "response_1": row["item__response_1"],
                "response_2": row["item__response_2"],
                "rating": row["rating"],
                "rating_label": RATING_LABELS[row["rating"]],
                "chosen": 2 if row["rating"] > 0 else 1,
                "swapped": row["swapped"],
                "annotator": names.of(row),
                "time_seconds": row["time_ms"] / 1000,
                "created_at": row["created_at"].isoformat(),
                "updated_at": row["updated_at"].isoformat(),
                "hit_id": row["hit_id"],
                "judgment_id": row["id"],
            }


def _buffered(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Join small pieces into chunks of about FLUSH_BYTES (each ends where a piece ends)."""
    buffer: list[bytes] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= FLUSH_BYTES:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def _jsonl(rows: Iterable[dict]) -> Iterator[bytes]:
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    for row in rows:
        yield (dumps(row) + "\n").encode()


def _csv(rows: Iterable[dict]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RAW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode()


def _parquet_schema(table: str, weighted: bool = False):
    import pyarrow as pa

    if table == "trl":
        columns = [
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("margin", pa.float64()),
            ("strength", pa.string()),
            ("batch", pa.string()),
            ("item_id", pa.string()),
            ("item_pk", pa.int64()),
            ("n_judgments", pa.int32()),
        ]
        return pa.schema([*columns, ("weight", pa.float64())] if weighted else columns)
    return pa.schema(
        [
            ("batch", pa.string()),
            ("item_id", pa.string()),
            ("item_pk", pa.int64()),
            ("prompt", pa.string()),
            ("response_1", pa.string()),
            ("response_2", pa.string()),
            ("rating", pa.int8()),
            ("rating_label", pa.string()),
            ("chosen", pa.int8()),
            ("swapped", pa.bool_()),
            ("annotator", pa.string()),
            ("time_seconds", pa.float64()),
            ("created_at", pa.string()),
            ("updated_at", pa.string()),
            ("hit_id", pa.int64()),
            ("judgment_id", pa.int64()),
        ]
    )


def _parquet(rows: Iterable[dict], table: str, weighted: bool = False) -> Iterator[bytes]:
    """Parquet written one record batch of CHUNK_SIZE rows at a time, each drained at once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema(table, weighted)
    sink = ChunkSink()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        batch: list[dict] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= CHUNK_SIZE:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                batch = []
                yield sink.drain()
        if batch:
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
    yield sink.drain()


@dataclass
class PreferenceExport:
    """One export: a format, its table (parquet only) and the filters."""

    fmt: str
    filters: ExportFilters
    table: str = "trl"
    rows_written: int = 0

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ExportError(f"Unknown format {self.fmt!r}; choose one of {', '.join(FORMATS)}.")
        if self.table not in PARQUET_TABLES:
            raise ExportError(f"Unknown table {self.table!r}; choose trl or raw.")

    @property
    def content_type(self) -> str:
        return {
            "csv": "text/csv; charset=utf-8",
            "parquet": "application/vnd.apache.parquet",
        }.get(self.fmt, "application/jsonl; charset=utf-8")

    @property
    def filename(self) -> str:
        stem = "preferences-" + ("-".join(self.filters.batches) if self.filters.batches else "all")
        suffix = {"csv": "csv", "parquet": "parquet"}.get(self.fmt, "jsonl")
        kind = self.table if self.fmt == "parquet" else self.fmt
        return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{stem}-{kind}") + f".{suffix}"

    def _rows(self, table: str, judgments: QuerySet[Judgment], weighted: bool = False) -> Iterator[dict]:
        if table == "raw":
            rows = raw_rows(self.filters, judgments)
        elif table == "rankings":
            rows = ranking_rows(self.filters, judgments)
        else:
            rows = trl_rows(self.filters, self.fmt == "trl-conversational", judgments, weighted)
        for row in rows:
            self.rows_written += 1
            yield row

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes, a chunk at a time. Option errors are raised before the first chunk."""
        judgments = self.filters.judgments()  # checks names and options now, not mid-download
        if self.fmt == "parquet":
            weighted = self.table == "trl" and has_rankings(judgments)
            return _parquet(self._rows(self.table, judgments, weighted), self.table, weighted)
        if self.fmt == "csv":
            return _buffered(_csv(self._rows("raw", judgments)))
        if self.fmt in ("raw", "rankings"):
            return _buffered(_jsonl(self._rows(self.fmt, judgments)))
        return _buffered(self._trl_lines(judgments))

    def _trl_lines(self, judgments: QuerySet[Judgment]) -> Iterator[bytes]:
        weighted = has_rankings(judgments)
        for line in trl_lines(self.filters, self.fmt == "trl-conversational", judgments, weighted):
            self.rows_written += 1
            yield line.encode()


def write_export(out: IO[bytes], export: PreferenceExport) -> int:
    """Write an export to the binary file `out`; returns the number of rows.

    The dashboard streams the same bytes through PreferenceExport(...).chunks().
    """
    for chunk in export.chunks():
        out.write(chunk)
    return export.rows_written


def export_preferences(out: IO[bytes], fmt: str, table: str = "trl", **filters: Any) -> int:
    """write_export() with the filters as keyword arguments."""
    return write_export(out, PreferenceExport(fmt=fmt, table=table, filters=ExportFilters(**filters)))
