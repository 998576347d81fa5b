"""Exporting rankings: the rankings format (each or Borda), ranking pairs in the pairwise formats, mixed exports."""

from __future__ import annotations

import io
import json
import math

import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from annotate.export import ExportError, ExportFilters, annotator_pseudonym, export_preferences, trl_lines, trl_rows
from annotate.models import Batch, Item, Judgment
from tests.annotate.factories import make_ranking_batch

pytestmark = pytest.mark.django_db


def export_lines(fmt: str, **filters) -> list[dict]:
    out = io.BytesIO()
    export_preferences(out, fmt, **filters)
    return [json.loads(line) for line in out.getvalue().decode().splitlines()]


@pytest.fixture
def ranked(alice, bob):
    """One K = 4 item: alice ranks 3 > 1 > 4 > 2, bob 1 > 3 > 2 > 4."""
    batch = make_ranking_batch("ranked", n_items=1, size=4)
    item = batch.items.get()
    Judgment.objects.create(item=item, annotator=alice, ranking=[[3], [1], [4], [2]], display_order=[2, 4, 1, 3])
    Judgment.objects.create(item=item, annotator=bob, ranking=[[1], [3], [2], [4]], display_order=[1, 2, 3, 4])
    return item


@pytest.fixture
def pairwise(alice):
    batch = Batch.objects.create(name="pairs")
    item = Item.objects.create(
        batch=batch, external_id="p", prompt=[{"role": "user", "content": "Hi?"}], response_1="Hello", response_2="Go"
    )
    Judgment.objects.create(item=item, annotator=alice, rating=-2)
    return item


def test_rankings_format_has_one_order_per_annotator(ranked, alice, bob):
    lines = export_lines("rankings")
    assert lines == [
        {
            "prompt": "Question number 0?",
            "responses": ["answer 1 to 0", "answer 2 to 0", "answer 3 to 0", "answer 4 to 0"],
            "ranking": [[3], [1], [4], [2]],
            "annotator": annotator_pseudonym(alice.pk),
            "n_judgments": 1,
            "batch": "ranked",
            "item_id": "0",
            "item_pk": ranked.pk,
        },
        {**lines[0], "ranking": [[1], [3], [2], [4]], "annotator": annotator_pseudonym(bob.pk)},
    ]
    assert [line["annotator"] for line in export_lines("rankings", usernames=True)] == ["alice", "bob"]


def test_borda_gives_one_ranking_per_item(ranked):
    # Points (K - rank): alice 3:3 1:2 4:1 2:0, bob 1:3 3:2 2:1 4:0 -> 1:5, 3:5, 2:1, 4:1: two ties.
    [line] = export_lines("rankings", ranking_aggregate="borda")
    assert line["ranking"] == [[1, 3], [2, 4]]
    assert (line["annotator"], line["n_judgments"]) == (None, 2)


def test_trl_gives_every_pair_of_a_ranking_weighted_one_over_c_k_2(ranked):
    lines = export_lines("trl", annotators=["alice"])
    assert len(lines) == 6
    assert {(line["chosen"][7], line["rejected"][7]) for line in lines} == {
        ("3", "1"),
        ("3", "4"),
        ("3", "2"),
        ("1", "4"),
        ("1", "2"),
        ("4", "2"),
    }
    assert all(line["weight"] == pytest.approx(1 / 6) for line in lines)
    assert math.isclose(sum(line["weight"] for line in lines), 1.0)
    assert {(line["margin"], line["strength"], line["n_judgments"]) for line in lines} == {(0.0, "ranked", 1)}


def test_adjacent_and_sampled_pairs(ranked):
    adjacent = export_lines("trl", annotators=["alice"], pairs="adjacent")
    assert [(line["chosen"][7], line["rejected"][7]) for line in adjacent] == [("3", "1"), ("1", "4"), ("4", "2")]
    assert all(line["weight"] == pytest.approx(1 / 3) for line in adjacent)
    sampled = export_lines("trl", pairs="sample:2")
    assert len(sampled) == 4 and all(line["weight"] == 0.5 for line in sampled)
    assert sampled == export_lines("trl", pairs="sample:2")  # the same export gives the same file
    borda_pairs = export_lines("trl", ranking_aggregate="borda")
    assert len(borda_pairs) == 4  # [[1, 3], [2, 4]]: ties give no pair
    assert all(line["n_judgments"] == 2 for line in borda_pairs)


def test_bad_pairs_option_is_refused_naming_it(ranked):
    with pytest.raises(ExportError, match="pairs must be one of all, adjacent, sample:M"):
        ExportFilters(pairs="every")
    with pytest.raises(ExportError, match="M of at least 1"):
        ExportFilters(pairs="sample:0")
    with pytest.raises(CommandError, match="pairs"):
        call_command("export_preferences", "--format", "trl", "--pairs", "sample:x", stdout=io.StringIO())


def test_mixed_exports_give_every_row_the_same_columns(ranked, pairwise):
    lines = export_lines("trl")
    assert len(lines) == 13
    assert {tuple(line) for line in lines} == {tuple(lines[0])}
    [pair] = [line for line in lines if line["batch"] == "pairs"]
    assert (pair["chosen"], pair["margin"], pair["strength"], pair["weight"]) == ("Hello", 1.0, "clear", 1.0)
    filters = ExportFilters()
    for conversational in (False, True):
        expected = [json.dumps(row, ensure_ascii=False) + "\n" for row in trl_rows(filters, conversational)]
        assert list(trl_lines(filters, conversational)) == expected
    raw = export_lines("raw")
    assert [line["batch"] for line in raw] == ["pairs"]  # ranking judgments are in the rankings format
    assert [line["batch"] for line in export_lines("rankings")] == ["ranked", "ranked"]


def test_a_pairwise_only_export_has_no_weight_column(pairwise):
    assert "weight" not in export_lines("trl")[0]


def test_parquet_trl_table_has_a_weight_column_with_rankings(ranked, pairwise, tmp_path):
    path = tmp_path / "p.parquet"
    call_command("export_preferences", "--format", "parquet", "-o", str(path), stderr=io.StringIO())
    table = pq.read_table(path)
    assert table.num_rows == 13 and "weight" in table.column_names


def test_the_command_writes_rankings_with_borda(ranked, tmp_path):
    path = tmp_path / "r.jsonl"
    call_command(
        "export_preferences",
        "--format",
        "rankings",
        "--ranking-aggregate",
        "borda",
        "-o",
        str(path),
        stderr=io.StringIO(),
    )
    [line] = [json.loads(text) for text in path.read_text().splitlines()]
    assert line["ranking"] == [[1, 3], [2, 4]]


def test_trl_from_rankings_loads_with_hugging_face_datasets(ranked, pairwise, tmp_path):
    datasets = pytest.importorskip("datasets", reason="datasets is not a product dependency")
    path = tmp_path / "prefs.jsonl"
    with path.open("wb") as out:
        export_preferences(out, "trl")
    loaded = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.num_rows == 13 and "weight" in loaded.column_names


def test_the_api_streams_rankings(ranked, charlie, client):
    client.force_login(charlie)
    response = client.get("/api/exports/preferences/", {"fmt": "rankings", "ranking_aggregate": "borda"})
    assert response.status_code == 200
    [line] = [json.loads(text) for text in b"".join(response.streaming_content).decode().splitlines()]
    assert line["ranking"] == [[1, 3], [2, 4]]
    bad = client.get("/api/exports/preferences/", {"fmt": "trl", "pairs": "some"})
    assert bad.status_code == 400 and "pairs" in bad.json()


def test_the_export_page_offers_the_ranking_options_and_downloads_rankings(ranked, charlie_client):
    from django.urls import reverse

    page = charlie_client.get(reverse("quality:export")).content.decode()
    assert 'name="ranking_aggregate"' in page and 'name="pairs"' in page and 'value="rankings"' in page
    response = charlie_client.get(
        reverse("quality:export"), {"format": "rankings", "ranking_aggregate": "borda", "pairs": "all"}
    )
    assert response.status_code == 200
    [line] = [json.loads(text) for text in b"".join(response.streaming_content).decode().splitlines()]
    assert line["ranking"] == [[1, 3], [2, 4]]
    refused = charlie_client.get(reverse("quality:export"), {"format": "trl", "pairs": "sample:0"})
    assert refused.status_code == 400 and "M of at least 1" in refused.content.decode()


def test_an_exported_rankings_file_imports_again_with_the_same_pairs(ranked, tmp_path):
    from annotate.importers import import_comparisons

    path = tmp_path / "borda.jsonl"
    with path.open("wb") as out:
        export_preferences(out, "rankings", ranking_aggregate="borda")
    result = import_comparisons(path, "again", as_judgments=True, allow_ties=True)
    assert result.batch.is_ranking and result.batch.ranking_size == 4 and result.judgment_count == 1

    def pairs(batch: str, **filters) -> list[tuple[str, str, float]]:
        return sorted(
            (r["chosen"], r["rejected"], r["weight"]) for r in export_lines("trl", batches=[batch], **filters)
        )

    assert pairs("again") == pairs("ranked", ranking_aggregate="borda")
