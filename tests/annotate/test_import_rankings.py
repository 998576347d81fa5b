"""Importing rankings: K responses with a known order (ranking or scores), batch kind, ties and the error rules."""

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotate.importers import ImportFileError, import_comparisons
from annotate.models import Batch, Item, Judgment

pytestmark = pytest.mark.django_db


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def ranking_record(n: int = 1, size: int = 4, **extra) -> dict:
    return {"prompt": f"Question {n}?", "responses": [f"answer {k} to {n}" for k in range(1, size + 1)], **extra}


def test_rankings_make_a_ranking_batch_with_the_known_order_in_the_source(tmp_path):
    path = write_jsonl(
        tmp_path / "r.jsonl",
        [ranking_record(1, ranking=[3, 1, 4, 2]), ranking_record(2, scores=[1, 4.5, 3, 2]), ranking_record(3)],
    )
    result = import_comparisons(path, "ranked")
    batch = result.batch
    assert (result.count, result.format, batch.kind, batch.ranking_size, batch.allow_ties) == (
        3,
        "ranking",
        "ranking",
        4,
        False,
    )
    first, second, third = Item.objects.order_by("external_id")
    assert first.responses == ["answer 1 to 1", "answer 2 to 1", "answer 3 to 1", "answer 4 to 1"]  # file order
    assert first.source["ranking"] == [[3], [1], [4], [2]]
    assert second.source["ranking"] == [[2], [3], [4], [1]] and second.source["scores"] == [1, 4.5, 3, 2]
    assert "ranking" not in third.source
    assert first.gold is None and Judgment.objects.count() == 0


def test_chat_prompts_are_accepted_as_for_pairs(tmp_path):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Name three colours"},
    ]
    path = write_jsonl(tmp_path / "r.jsonl", [{"prompt": messages, "responses": ["a", "b", "c"]}])
    import_comparisons(path, "chat")
    item = Item.objects.get()
    assert item.prompt == messages and item.response_count == 3


def test_as_judgments_stores_each_order_as_a_ranking_by_the_import_user(tmp_path):
    path = write_jsonl(
        tmp_path / "r.jsonl", [ranking_record(1, ranking=[2, 1, 3, 4]), ranking_record(2, scores=[4, 3, 2, 1])]
    )
    result = import_comparisons(path, "known", as_judgments=True)
    assert result.judgment_count == 2 and not result.batch.active
    rankings = {j.item.external_id: j.ranking for j in Judgment.objects.select_related("item", "annotator")}
    assert rankings == {"1": [[2], [1], [3], [4]], "2": [[1], [2], [3], [4]]}
    assert {j.annotator.username for j in Judgment.objects.all()} == {"import"}
    assert all(j.rating is None for j in Judgment.objects.all())


def test_as_judgments_refuses_a_record_without_an_order(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [ranking_record(1, ranking=[1, 2, 3, 4]), ranking_record(2)])
    with pytest.raises(ImportFileError, match="line 2, field 'ranking': --as-judgments needs every record's order"):
        import_comparisons(path, "known", as_judgments=True)
    assert Batch.objects.count() == 0


def test_different_sizes_leave_k_per_item(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [ranking_record(1, size=3), ranking_record(2, size=5)])
    batch = import_comparisons(path, "mixed-k").batch
    assert batch.ranking_size is None
    assert sorted(i.response_count for i in batch.items.all()) == [3, 5]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (ranking_record(size=2), "field 'responses': 2 responses; a ranking has 3 to 9"),
        (ranking_record(size=10), "field 'responses': 10 responses; a ranking has 3 to 9"),
        ({"prompt": "q", "responses": ["a", 2, "c"]}, "field 'responses': response 2: expected a string"),
        ({"prompt": "q", "responses": ["a", " ", "c"]}, "field 'responses': response 2: empty"),
        ({"prompt": "q", "responses": "abc"}, "field 'responses': expected a list of 3 to 9 strings"),
        (
            ranking_record(ranking=[0, 1, 2, 3]),
            "field 'ranking': response number 0 is not between 1 and 4 (response numbers are 1-based)",
        ),
        (ranking_record(ranking=[1, 2, 3]), "field 'ranking': the ranking leaves out response(s) 4"),
        (ranking_record(ranking=[1, 1, 2, 3]), "field 'ranking': a response appears twice"),
        (
            ranking_record(ranking=[[1, 2], 3, 4]),
            "field 'ranking': a nested list is a tie, and the batch does not allow ties",
        ),
        (ranking_record(scores=[1, 2, 2, 3]), "field 'scores': responses 2 and 3 have equal scores, a tie"),
        (ranking_record(scores=[1, 2, 3]), "field 'scores': expected a list of 4 numbers"),
        (ranking_record(scores=[1, 2, "x", 3]), "field 'scores': response 3: expected a number"),
        (ranking_record(scores=[1, 2, 3, 4], ranking=[1, 2, 3, 4]), "field 'scores': give either ranking or scores"),
    ],
)
def test_bad_ranking_records_name_line_and_field_and_write_nothing(tmp_path, record, message):
    path = write_jsonl(tmp_path / "r.jsonl", [ranking_record(1), {**record, "id": "x"}])
    with pytest.raises(ImportFileError) as caught:
        import_comparisons(path, "bad")
    assert str(caught.value).startswith("line 2, ") and message in str(caught.value)
    assert Batch.objects.count() == 0 and Item.objects.count() == 0


def test_ties_need_a_batch_that_allows_them(tmp_path):
    path = write_jsonl(
        tmp_path / "r.jsonl", [ranking_record(1, ranking=[[1, 2], 3, 4]), ranking_record(2, scores=[2, 2, 1, 0])]
    )
    batch = import_comparisons(path, "ties", allow_ties=True, as_judgments=True).batch
    assert batch.allow_ties
    assert sorted(j.ranking for j in Judgment.objects.all()) == [[[1, 2], [3], [4]], [[1, 2], [3], [4]]]


def test_a_file_cannot_mix_rankings_and_pairs(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [ranking_record(1), {"prompt": "q", "response_1": "a", "response_2": "b"}])
    with pytest.raises(ImportFileError, match="line 2: a pairwise record in a file of ranking records"):
        import_comparisons(path, "mixed")
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "response_1": "a", "response_2": "b"}, ranking_record(2)])
    with pytest.raises(ImportFileError, match="line 2, field 'responses': a ranking record in a file of pairwise"):
        import_comparisons(path, "mixed")
    assert Item.objects.count() == 0


def test_an_existing_batch_keeps_its_kind_and_size(tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "response_1": "a", "response_2": "b"}])
    import_comparisons(pairs, "pairs")
    with pytest.raises(ImportFileError, match="batch 'pairs' is a pairwise batch and this file holds ranking records"):
        import_comparisons(write_jsonl(tmp_path / "r.jsonl", [ranking_record(1)]), "pairs")
    import_comparisons(write_jsonl(tmp_path / "r4.jsonl", [ranking_record(1)]), "four")
    with pytest.raises(ImportFileError, match="line 1, field 'responses': 5 responses, but the batch ranks 4"):
        import_comparisons(write_jsonl(tmp_path / "r5.jsonl", [ranking_record(2, size=5)]), "four")
    with pytest.raises(ImportFileError, match="batch .four. is a ranking batch and this file holds pairwise records"):
        import_comparisons(pairs, "four", fmt="auto")
    assert Item.objects.count() == 2


def test_the_command_imports_rankings_with_ties(tmp_path, capsys):
    path = write_jsonl(tmp_path / "r.jsonl", [ranking_record(1, scores=[3, 3, 1, 0])])
    with pytest.raises(CommandError, match="equal scores, a tie"):
        call_command("import_comparisons", str(path), "--batch", "cmd")
    call_command("import_comparisons", str(path), "--batch", "cmd", "--allow-ties", "--as-judgments")
    out = capsys.readouterr().out
    assert "Imported 1 item into batch cmd (a ranking batch, 4 responses per item)." in out
    assert "Stored 1 judgment by import." in out
    assert Judgment.objects.get().ranking == [[1, 2], [3], [4]]


def test_the_admin_upload_imports_rankings_with_ties(charlie_client):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    text = json.dumps(ranking_record(1, scores=[2, 2, 1, 0])) + "\n"
    data = {"file": SimpleUploadedFile("r.jsonl", text.encode()), "batch_name": "up", "format": "auto"}
    refused = charlie_client.post(reverse("admin:annotate_batch_import"), data)
    assert "equal scores, a tie" in refused.content.decode() and not Batch.objects.exists()
    data = {**data, "file": SimpleUploadedFile("r.jsonl", text.encode()), "allow_ties": "on"}
    response = charlie_client.post(reverse("admin:annotate_batch_import"), data, follow=True)
    assert "Imported 1 item into batch up." in response.content.decode()
    batch = Batch.objects.get(name="up")
    assert batch.is_ranking and batch.allow_ties and batch.items.get().source["ranking"] == [[1, 2], [3], [4]]


def test_a_background_import_job_keeps_allow_ties(tmp_path, settings):
    from annotate.import_jobs import run_import_job, start_import_job

    settings.IMPORT_DIR = str(tmp_path / "imports")
    text = json.dumps(ranking_record(1, ranking=[[1, 2], 3, 4])) + "\n"
    job = start_import_job(io.BytesIO(text.encode()), "r.jsonl", "bg", allow_ties=True, as_judgments=True)
    assert run_import_job(job.pk) == "done"
    assert Judgment.objects.get().ranking == [[1, 2], [3], [4]]


def test_the_admin_batch_form_checks_kind_settings(charlie_client):
    from django.urls import reverse

    fields = {
        "name": "formed",
        "kind": "pairwise",
        "ranking_size": "4",
        "samples_per_hit": 6,
        "overlap": 1,
        "gold_rate": 0,
        "active": "on",
        "priority": 0,
        "assignment_order": "import",
        "exploration_share": 0.2,
        "created_at_0": "2026-12-01",
        "created_at_1": "10:00",
    }
    page = charlie_client.post(reverse("admin:annotate_batch_add"), fields).content.decode()
    assert "Only a ranking batch has a ranking size" in page and not Batch.objects.exists()
    response = charlie_client.post(reverse("admin:annotate_batch_add"), {**fields, "kind": "ranking"})
    assert response.status_code == 302
    assert Batch.objects.get(name="formed").ranking_size == 4


def test_a_named_pairwise_format_refuses_ranking_records(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [ranking_record(1)])
    with pytest.raises(
        ImportFileError,
        match=r"line 1, field 'responses': a ranking record in a file of pairwise "
        r"records \(format plain\)",
    ):
        import_comparisons(path, "named", fmt="plain")


def test_each_response_is_held_to_the_text_limit(tmp_path, settings):
    settings.ITEM_MAX_CHARS = 10
    path = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "q", "responses": ["short", "also short", "x" * 11]}])
    with pytest.raises(
        ImportFileError,
        match="line 1, field 'responses': response 3: 11 characters, more than the limit of 10 per text",
    ):
        import_comparisons(path, "long")
    assert not Batch.objects.exists()


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([1, float("nan"), 3, 4], "field 'scores': response 2: expected a finite number, got NaN"),
        ([1, 2, float("inf"), 4], "field 'scores': response 3: expected a finite number, got Infinity"),
        ([5, 5, 5, 5], "field 'scores': all 4 responses have equal scores, which says nothing about their order"),
    ],
)
def test_scores_that_are_not_finite_or_all_equal_are_refused_even_where_ties_are_allowed(tmp_path, scores, message):
    path = write_jsonl(tmp_path / "r.jsonl", [ranking_record(1), ranking_record(2, scores=scores)])
    with pytest.raises(ImportFileError) as caught:
        import_comparisons(path, "bad", allow_ties=True)
    assert str(caught.value).startswith("line 2, ") and message in str(caught.value)
    assert Batch.objects.count() == 0


def test_an_all_tied_ranking_is_refused_even_where_ties_are_allowed(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [ranking_record(1, ranking=[[1, 2, 3, 4]])])
    with pytest.raises(ImportFileError) as caught:
        import_comparisons(path, "bad", allow_ties=True, as_judgments=True)
    assert "all 4 responses are tied in one place, which says nothing" in str(caught.value)
