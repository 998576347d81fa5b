"""Preference exports: each format's exact shape, the filters, streaming memory and the round trip."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotate.export import (
    ExportError,
    ExportFilters,
    PreferenceExport,
    annotator_pseudonym,
    export_preferences,
    render_prompt,
    trl_lines,
    trl_rows,
)
from annotate.importers import import_comparisons
from annotate.models import Batch, Hit, Item, Judgment

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def make_item(batch: Batch, external_id: str, instruction: str = "Name a colour.", **fields) -> Item:
    fields.setdefault("response_1", "Red.")
    fields.setdefault("response_2", "The sky is blue, so blue.")
    prompt = fields.pop("prompt", [{"role": "user", "content": instruction}])
    return Item.objects.create(batch=batch, external_id=external_id, prompt=prompt, **fields)


def judge(item: Item, user, rating: int, **fields) -> Judgment:
    fields.setdefault("created_at", WHEN)
    return Judgment.objects.create(item=item, annotator=user, rating=rating, **fields)


def export_text(fmt: str, **filters) -> str:
    out = io.BytesIO()
    export_preferences(out, fmt, **filters)
    return out.getvalue().decode()


def export_lines(fmt: str, **filters) -> list[dict]:
    return [json.loads(line) for line in export_text(fmt, **filters).splitlines()]


@pytest.fixture
def colours(alice):
    """One judged item: alice found response 1 clearly better, with the sides swapped on screen."""
    batch = Batch.objects.create(name="colours", overlap=2)
    item = make_item(batch, "c-1", prompt_input="One word only.")
    hit = Hit.objects.create(annotator=alice, batch=batch)
    judge(item, alice, -2, swapped=True, time_ms=12_345, hit=hit)
    return item


def test_trl_line_has_prompt_chosen_rejected_strings_and_the_strength(colours):
    [line] = export_lines("trl")
    assert line == {
        "prompt": "Name a colour.\n\nOne word only.",
        "chosen": "Red.",
        "rejected": "The sky is blue, so blue.",
        "margin": 1.0,
        "strength": "clear",
        "batch": "colours",
        "item_id": "c-1",
        "item_pk": colours.pk,
        "n_judgments": 1,
    }


def test_trl_prompt_of_a_multi_turn_item_is_a_transcript(alice):
    batch = Batch.objects.create(name="chat")
    turns = [
        {"role": "user", "content": "How are you today?"},
        {"role": "assistant", "content": "I'm doing well, thank you!"},
        {"role": "user", "content": "Can you tell me a joke?"},
    ]
    judge(make_item(batch, "1", prompt=turns), alice, 1)
    [line] = export_lines("trl")
    assert line["prompt"] == (
        "<User> How are you today?\n\n<Assistant> I'm doing well, thank you!\n\n<User> Can you tell me a joke?"
    )
    assert (line["chosen"], line["margin"], line["strength"]) == ("The sky is blue, so blue.", 0.0, "slight")


def test_trl_conversational_line_has_message_lists(colours):
    [line] = export_lines("trl-conversational")
    assert line["prompt"] == [{"role": "user", "content": "Name a colour.\n\nOne word only."}]
    assert line["chosen"] == [{"role": "assistant", "content": "Red."}]
    assert line["rejected"] == [{"role": "assistant", "content": "The sky is blue, so blue."}]
    assert (line["margin"], line["batch"], line["item_id"]) == (1.0, "colours", "c-1")


def test_raw_line_describes_the_judgment_with_a_stable_pseudonym(colours, alice):
    judgment = colours.judgments.get()
    [line] = export_lines("raw")
    assert line == {
        "batch": "colours",
        "item_id": "c-1",
        "item_pk": colours.pk,
        "prompt": "Name a colour.\n\nOne word only.",
        "response_1": "Red.",
        "response_2": "The sky is blue, so blue.",
        "rating": -2,
        "rating_label": "Response 1 is better.",
        "chosen": 1,
        "swapped": True,
        "annotator": annotator_pseudonym(alice.pk),
        "time_seconds": 12.345,
        "created_at": "2026-11-20T09:30:00+00:00",
        "updated_at": judgment.updated_at.isoformat(),
        "hit_id": judgment.hit_id,
        "judgment_id": judgment.pk,
    }
    assert line["annotator"].startswith("annotator-") and len(line["annotator"]) == len("annotator-") + 10
    assert "alice" not in export_text("raw")
    assert export_lines("raw")[0]["annotator"] == line["annotator"]  # stable across exports
    assert export_lines("raw", usernames=True)[0]["annotator"] == "alice"


def test_csv_has_a_header_and_the_raw_rows(colours, alice, bob):
    make_item(colours.batch, "c-2", response_1="Comma, and\nnew line", response_2='"quoted"')
    judge(Item.objects.get(external_id="c-2"), bob, 1)
    text = export_text("csv", usernames=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    raw = export_lines("raw", usernames=True)
    assert text.splitlines()[0].split(",")[:4] == ["batch", "item_id", "item_pk", "prompt"]
    assert len(rows) == 2
    assert rows[0]["rating"] == "-2" and rows[0]["swapped"] == "True" and rows[0]["annotator"] == "alice"
    assert rows[1]["response_1"] == "Comma, and\nnew line" and rows[1]["response_2"] == '"quoted"'
    assert rows[1] == {key: "" if value is None else str(value) for key, value in raw[1].items()}


def test_parquet_holds_the_trl_or_the_raw_table(colours, tmp_path):
    for table in ("trl", "raw"):
        path = tmp_path / f"{table}.parquet"
        with path.open("wb") as out:
            export_preferences(out, "parquet", table=table)
        rows = pq.read_table(path).to_pylist()
        assert rows == export_lines(table)


def test_batch_date_and_annotator_filters(alice, bob, charlie):
    first, second = Batch.objects.create(name="first"), Batch.objects.create(name="second")
    a, b = make_item(first, "a"), make_item(second, "b")
    judge(a, alice, 2, created_at=datetime(2026, 11, 1, 12, tzinfo=UTC))
    judge(a, bob, 2, created_at=datetime(2026, 11, 10, 23, 59, tzinfo=UTC))
    judge(b, charlie, -1, created_at=datetime(2026, 11, 11, 0, 0, tzinfo=UTC))

    def who(**filters) -> list[str]:
        return [row["annotator"] for row in export_lines("raw", usernames=True, **filters)]

    assert who(batches=["first"]) == ["alice", "bob"]
    assert who(batches=["second"]) == ["charlie"]
    assert who(since="2026-11-10") == ["bob", "charlie"]
    assert who(until="2026-11-10") == ["alice", "bob"]  # a bare date includes that day
    assert who(since="2026-11-02", until="2026-11-10T23:00:00+00:00") == []
    assert who(annotators=["alice", "charlie"]) == ["alice", "charlie"]
    assert who(exclude_annotators=["bob"]) == ["alice", "charlie"]
    with pytest.raises(ExportError, match="No batch named 'third'"):
        export_text("trl", batches=["first", "third"])
    with pytest.raises(ExportError, match="No annotator named 'dave'"):
        export_text("trl", annotators=["dave"])
    with pytest.raises(ExportError, match="date"):
        export_text("trl", since="last week")


def test_min_judgments_and_aggregation_per_item(alice, bob, charlie):
    batch = Batch.objects.create(name="votes", overlap=3)
    split = make_item(batch, "split", response_1="one", response_2="two")  # 2 vs 1 for response 2
    tie = make_item(batch, "tie")
    agreed = make_item(batch, "agreed", response_1="left", response_2="right")
    single = make_item(batch, "single")
    for user, rating in ((alice, 2), (bob, 1), (charlie, -2)):
        judge(split, user, rating)
    judge(tie, alice, 2)
    judge(tie, bob, -2)
    judge(agreed, alice, -2)
    judge(agreed, bob, -1)
    judge(single, charlie, 1)

    def items(**filters) -> list[tuple]:
        return [(r["item_id"], r["chosen"], r["margin"], r["n_judgments"]) for r in export_lines("trl", **filters)]

    assert len(items()) == 8
    assert {i for i, *_ in items(min_judgments=2)} == {"split", "tie", "agreed"}
    assert items(min_judgments=3) == [("split", "two", 1.0, 1), ("split", "two", 0.0, 1), ("split", "one", 1.0, 1)]
    # majority: one pair per item; the mean rating toward the winner ((2 + 1 - 2) / 3) makes it slight (margin 0.0),
    # (-2, -1) is clear (mean 1.5, margin 1.0); the tie is dropped
    assert items(aggregate="majority", min_judgments=2) == [("split", "two", 0.0, 3), ("agreed", "left", 1.0, 2)]
    assert items(aggregate="agreed", min_judgments=2) == [("agreed", "left", 1.0, 2)]
    assert [r["strength"] for r in export_lines("trl", aggregate="agreed", min_judgments=2)] == ["clear"]
    # the raw table keeps one row per judgment, of the items that agree
    assert [r["item_id"] for r in export_lines("raw", aggregate="agreed", min_judgments=2)] == ["agreed", "agreed"]
    # min_judgments counts what is left after the annotator filters
    assert {i for i, *_ in items(min_judgments=2, exclude_annotators=["bob"])} == {"split"}


def test_exclude_flagged_leaves_out_annotators_below_the_gold_threshold(alice, bob):
    batch = Batch.objects.create(name="gold")
    for n in range(5):
        item = make_item(batch, f"g{n}", gold=2)
        judge(item, alice, 2, time_ms=10_000)
        judge(item, bob, -2, time_ms=10_000)  # wrong on every gold item
    everyone = {r["annotator"] for r in export_lines("raw", usernames=True)}
    trusted = {r["annotator"] for r in export_lines("raw", usernames=True, exclude_flagged=True)}
    assert (everyone, trusted) == ({"alice", "bob"}, {"alice"})


def test_export_streams_20k_judgments_with_small_peak_memory(django_user_model):
    """Rows come from a chunked cursor: the peak stays far below the size of the export itself."""
    batch = Batch.objects.create(name="big", overlap=4)
    users = django_user_model.objects.bulk_create(django_user_model(username=f"annotator{n}") for n in range(4))
    filler = "x" * 200
    items = Item.objects.bulk_create(
        Item(batch=batch, external_id=str(n), prompt=[{"role": "user", "content": f"Q{n} {filler}"}],
             response_1=f"A{n} {filler}", response_2=f"B{n} {filler}")
        for n in range(5000)
    )  # fmt: skip
    Judgment.objects.bulk_create(
        (Judgment(item=item, annotator=user, rating=(2, -1, 1, -2)[(item.pk + k) % 4]) for item in items
         for k, user in enumerate(users)),
        batch_size=5000,
    )  # fmt: skip
    del items

    class CountingSink:
        size = 0
        lines = 0

        def write(self, chunk: bytes) -> None:
            self.size += len(chunk)
            self.lines += chunk.count(b"\n")

    def export_measured(**filters) -> tuple[CountingSink, int]:
        sink = CountingSink()
        tracemalloc.start()
        try:
            assert export_preferences(sink, "trl", batches=["big"], **filters) == sink.lines
            return sink, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    quarter, quarter_peak = export_measured(annotators=["annotator0"])
    whole, peak = export_measured()
    assert (quarter.lines, whole.lines) == (5_000, 20_000)
    # Flat: four times the rows, about the same peak (one chunk of rows and one output buffer).
    assert peak < quarter_peak * 1.3, f"peak {peak / 1e6:.1f} MB for 20k rows, {quarter_peak / 1e6:.1f} MB for 5k"
    assert peak < 8_000_000 and peak < whole.size / 2, f"peak {peak / 1e6:.1f} MB exporting {whole.size / 1e6:.1f} MB"


def test_round_trip_through_import_as_judgments_gives_the_same_pairs(alice, bob, tmp_path):
    batch = Batch.objects.create(name="source")
    judge(make_item(batch, "1", prompt_input="Input text."), alice, -2)
    judge(make_item(batch, "1b", "Pick one.", response_1="Yes", response_2="No"), alice, 1)
    judge(make_item(batch, "1b2", "Pick one.", response_1="Yes", response_2="No"), bob, 2)
    chat = [
        {"role": "user", "content": "Hi."},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "A joke?"},
    ]
    judge(make_item(batch, "2", prompt=chat, response_1="No.", response_2="Why did the math book look sad?"), bob, 2)
    path = tmp_path / "source.jsonl"
    with path.open("wb") as out:
        assert export_preferences(out, "trl", batches=["source"]) == 4

    result = import_comparisons(path, "reimported", fmt="trl", as_judgments=True, seed=7)
    assert result.count == 4 and result.judgment_count == 4

    def pairs(name: str) -> list[tuple]:
        return sorted((r["prompt"], r["chosen"], r["rejected"]) for r in export_lines("trl", batches=[name]))

    assert pairs("reimported") == pairs("source")
    assert len(set(pairs("source"))) == 3  # two judgments share one pair


def test_trl_file_matches_the_schema_of_the_datasets_json_loader(colours, alice, tmp_path):
    """Every line an object with the same keys and one JSON type per key: what `datasets`' json loader needs."""
    judge(make_item(colours.batch, "c-2", prompt=[{"role": "user", "content": "Ünïcode ✓"}]), alice, 1)
    path = tmp_path / "prefs.jsonl"
    with path.open("wb") as out:
        export_preferences(out, "trl")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [type(v).__name__ for v in lines[0].values()] == [type(v).__name__ for v in lines[1].values()]
    assert [list(line) for line in lines] == [list(lines[0])] * 2
    assert all(isinstance(line[k], str) for line in lines for k in ("prompt", "chosen", "rejected"))
    assert lines[1]["prompt"] == "Ünïcode ✓"


def test_trl_file_loads_with_hugging_face_datasets(colours, tmp_path):
    datasets = pytest.importorskip("datasets", reason="datasets is not a product dependency")
    path = tmp_path / "prefs.jsonl"
    with path.open("wb") as out:
        export_preferences(out, "trl")
    loaded = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded[0]["chosen"] == "Red." and loaded.num_rows == 1


@pytest.mark.parametrize("aggregate", ["each", "majority"])
@pytest.mark.parametrize("conversational", [False, True])
def test_fast_trl_lines_equal_json_dumps_of_the_rows(alice, bob, charlie, aggregate, conversational):
    batch = Batch.objects.create(name='q"uote\\s')
    tricky = make_item(batch, "ü/1", 'Say "hi"\n\ttab ✓', response_1="a\\b\u2028", response_2="</script> 𝄞")
    for user, rating in ((alice, 1), (bob, 2), (charlie, -1)):
        judge(tricky, user, rating)
    filters = ExportFilters(aggregate=aggregate)
    expected = [json.dumps(row, ensure_ascii=False) + "\n" for row in trl_rows(filters, conversational)]
    assert list(trl_lines(filters, conversational)) == expected
    assert len(expected) == (3 if aggregate == "each" else 1)


def test_prompt_rendering_of_a_system_message():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert render_prompt(messages) == "<System> Be brief.\n\n<User> Hi"
    assert render_prompt([{"role": "user", "content": "Hi"}], "there") == "Hi\n\nthere"


def test_filename_names_batches_and_format():
    export = PreferenceExport(fmt="parquet", table="raw", filters=ExportFilters(batches=["a b", "c/d"]))
    assert export.filename == "preferences-a_b-c_d-raw.parquet"
    with pytest.raises(ExportError, match="Unknown format 'xml'"):
        PreferenceExport(fmt="xml", filters=ExportFilters())


class TestCommand:
    def test_writes_to_stdout(self, colours):
        out = io.StringIO()
        call_command("export_preferences", "--format", "trl", "--batch", "colours", stdout=out)
        assert [json.loads(line)["chosen"] for line in out.getvalue().splitlines()] == ["Red."]

    def test_writes_a_file_with_options(self, colours, bob, tmp_path):
        judge(make_item(colours.batch, "c-2"), bob, 2, created_at=datetime(2026, 11, 24, tzinfo=UTC))
        target = tmp_path / "raw.csv"
        call_command(
            "export_preferences", "--format", "csv", "-o", str(target), "--usernames", "--since", "2026-11-21",
            "--exclude-annotator", "alice", stderr=io.StringIO(),
        )  # fmt: skip
        rows = list(csv.DictReader(target.open(encoding="utf-8")))
        assert [(r["item_id"], r["annotator"]) for r in rows] == [("c-2", "bob")]
        assert list(tmp_path.iterdir()) == [target]  # no temporary file left

    def test_parquet_with_table(self, colours, tmp_path):
        target = tmp_path / "out.parquet"
        call_command(
            "export_preferences", "--format", "parquet", "--table", "raw", "-o", str(target), stderr=io.StringIO()
        )
        assert pq.read_table(target).column("rating").to_pylist() == [-2]

    def test_errors_name_the_problem_and_leave_no_file(self, colours, tmp_path):
        target = tmp_path / "out.jsonl"
        with pytest.raises(CommandError, match="No batch named 'nope'"):
            call_command("export_preferences", "--format", "trl", "--batch", "nope", "-o", str(target))
        with pytest.raises(CommandError, match="parquet is binary"):
            call_command("export_preferences", "--format", "parquet")
        with pytest.raises(CommandError, match="No annotator named 'zed'"):
            call_command("export_preferences", "--format", "raw", "--annotator", "zed", "-o", str(target))
        assert list(tmp_path.iterdir()) == []
        assert get_user_model().objects.filter(username="zed").count() == 0
