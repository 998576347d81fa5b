"""Input size and cost: uploads streamed under settable limits, large imports as a task, markdown rendered once,
bidirectional control characters shown instead of obeyed."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape

from annotate import rendering
from annotate.import_jobs import run_import_job
from annotate.importers import ImportFileError, import_comparisons
from annotate.models import Batch, ImportJob, Item, RenderedMarkdown
from annotate.rendering import render_markdown
from annotate.services import assign_hit
from tests.annotate import factories
from tests.worker import wait_for

pytestmark = pytest.mark.django_db

IMPORT_URL = reverse("admin:annotate_batch_import")
PAIR = {"prompt": "What colour is the sky?", "response_1": "Blue.", "response_2": "Green."}


def jsonl(records: list) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def pairs(n: int, start: int = 1) -> list[dict]:
    return [{**PAIR, "id": f"p{i}"} for i in range(start, start + n)]


# Streaming and the size / row / text limits -------------------------------------------------------------------


def test_a_large_file_with_a_bad_line_2_fails_at_line_2_without_reading_the_file(tmp_path):
    """The fault: a 200 MB upload was read whole (+570 MB) before failing on line 2."""
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as out:
        out.write(jsonl([PAIR, {"prompt": "Q", "response_1": 3, "response_2": "x"}]))
        filler = jsonl(pairs(1000))
        for _ in range(40_000_000 // len(filler)):  # ~40 MB after the bad line
            out.write(filler)

    tracemalloc.start()
    try:
        with pytest.raises(ImportFileError, match=r"^line 2, field 'response_1': expected a string"):
            import_comparisons(path, "big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 4_000_000, f"peak {peak:,} bytes: the file was read, not streamed"
    assert not Batch.objects.exists()


def test_a_file_over_import_max_bytes_is_refused_naming_the_limit_and_setting(tmp_path, settings):
    settings.IMPORT_MAX_BYTES = 1000
    path = tmp_path / "big.jsonl"
    path.write_bytes(jsonl(pairs(20)))

    with pytest.raises(ImportFileError, match=r"larger than the import limit of 1000 bytes .*setting IMPORT_MAX_BYTES"):
        import_comparisons(path, "big")

    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(jsonl(pairs(200))))
    assert bomb.stat().st_size < 1000
    with pytest.raises(ImportFileError, match=r"unpacks to more than the import limit .*IMPORT_MAX_BYTES"):
        import_comparisons(bomb, "bomb")
    assert not Batch.objects.exists()


def test_more_rows_than_import_max_rows_are_refused_naming_the_line_and_setting(tmp_path, settings):
    settings.IMPORT_MAX_ROWS = 3
    path = tmp_path / "rows.jsonl"
    path.write_bytes(jsonl(pairs(4)))

    with pytest.raises(ImportFileError, match=r"^line 4: more than 3 records.*setting IMPORT_MAX_ROWS"):
        import_comparisons(path, "rows")
    assert not Batch.objects.exists()
    path.write_bytes(jsonl(pairs(3)))
    assert import_comparisons(path, "rows").count == 3


def test_a_text_over_item_max_chars_is_refused_naming_line_field_and_setting(tmp_path, settings):
    settings.ITEM_MAX_CHARS = 100
    path = tmp_path / "long.jsonl"
    path.write_bytes(jsonl([PAIR, {**PAIR, "response_2": "x" * 101}]))

    with pytest.raises(ImportFileError) as error:
        import_comparisons(path, "long")
    assert str(error.value) == (
        "line 2, field 'response_2': 101 characters, more than the limit of 100 per text (setting ITEM_MAX_CHARS)"
    )

    conversational = {
        "prompt": [{"role": "user", "content": "Hi"}],
        "chosen": [{"role": "assistant", "content": "y" * 150}],
        "rejected": [{"role": "assistant", "content": "no"}],
    }
    path.write_bytes(jsonl([conversational]))
    with pytest.raises(ImportFileError, match=r"^line 1, field 'chosen': message 1: 150 characters.*ITEM_MAX_CHARS"):
        import_comparisons(path, "long")
    assert not Batch.objects.exists()


def test_an_import_is_written_in_chunks_and_still_all_or_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("annotate.importers.CHUNK_SIZE", 2)
    path = tmp_path / "chunks.jsonl"
    path.write_bytes(jsonl(pairs(5)))
    assert import_comparisons(path, "chunks").count == 5
    # The clash is in the third chunk: the first two chunks are rolled back too.
    path.write_bytes(jsonl(pairs(4, start=10) + pairs(1, start=1)))
    with pytest.raises(ImportFileError, match="already has an item"):
        import_comparisons(path, "chunks")
    assert Item.objects.count() == 5


# The admin and the API: limits, and large imports as a task --------------------------------------------------


def test_admin_upload_over_the_limit_names_the_limit_and_imports_nothing(charlie_client, settings):
    settings.IMPORT_MAX_BYTES = 2000
    data = {"file": SimpleUploadedFile("big.jsonl", jsonl(pairs(50))), "batch_name": "big", "format": "auto"}

    response = charlie_client.post(IMPORT_URL, data)

    page = response.content.decode()
    assert response.status_code == 200
    assert "The upload is larger than the import limit of 1.95 KiB (2,000 bytes; setting IMPORT_MAX_BYTES)" in page
    assert "Nothing was imported." in page
    assert not Batch.objects.exists()


def test_admin_upload_over_the_threshold_becomes_a_job_with_a_progress_page(charlie_client, charlie, settings):
    settings.IMPORT_BACKGROUND_BYTES = 100
    data = {"file": SimpleUploadedFile("many.jsonl", jsonl(pairs(30))), "batch_name": "many", "format": "auto"}

    response = charlie_client.post(IMPORT_URL, data)

    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:annotate_batch_import_job", args=[job.pk])
    assert (job.status, job.batch_name, job.file_name, job.created_by) == ("queued", "many", "many.jsonl", charlie)
    assert Path(job.file_path).is_file() and Path(job.file_path).is_relative_to(settings.IMPORT_DIR)
    page = charlie_client.get(response.url).content.decode()
    assert "Queued" in page and 'hx-trigger="every 1s"' in page, "the page polls while the job runs"

    assert run_import_job(job.pk) == "done"

    job.refresh_from_db()
    assert (job.status, job.items_created, job.rows_done) == ("done", 30, 30)
    assert job.batch.items.count() == 30 and not Path(job.file_path).exists()
    partial = charlie_client.get(response.url, headers={"HX-Request": "true"}).content.decode()
    assert "Imported 30 items into batch" in partial and "hx-trigger" not in partial, "polling stops"
    assert run_import_job(job.pk) == "not queued", "a redelivered message does nothing"


def test_a_bad_file_fails_its_job_with_line_and_field_and_imports_nothing(charlie_client, settings):
    settings.IMPORT_BACKGROUND_BYTES = 100
    records = pairs(10) + [{**PAIR, "id": "bad", "response_2": ""}]
    charlie_client.post(
        IMPORT_URL, {"file": SimpleUploadedFile("bad.jsonl", jsonl(records)), "batch_name": "b", "format": "auto"}
    )
    job = ImportJob.objects.get()

    assert run_import_job(job.pk) == "failed"

    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error == "bad.jsonl: line 11, field 'response_2': empty. Nothing was imported."
    assert not Batch.objects.exists() and not Path(job.file_path).exists()
    page = charlie_client.get(reverse("admin:annotate_batch_import_job", args=[job.pk])).content.decode()
    assert escape(job.error) in page


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_a_large_admin_import(celery_worker, client, charlie, settings):
    settings.IMPORT_BACKGROUND_BYTES = 100
    client.force_login(charlie)
    data = {
        "file": SimpleUploadedFile("w.jsonl.gz", gzip.compress(jsonl(pairs(40)))),
        "batch_name": "worked",
        "format": "auto",
    }

    client.post(IMPORT_URL, data)

    job = ImportJob.objects.get()
    wait_for(lambda: ImportJob.objects.get(pk=job.pk).is_finished, timeout=60, message="the import job")
    job.refresh_from_db()
    assert (job.status, job.items_created, job.error) == ("done", 40, ""), celery_worker.log()
    assert Batch.objects.get(name="worked").items.count() == 40


# Rendering once ------------------------------------------------------------------------------------------------


def test_each_text_is_rendered_once_not_on_every_rating_click(alice, alice_client, monkeypatch):
    """The fault: every click re-rendered the markdown (8.3 s per click for a 1 MB response)."""
    factories.make_batch("once", 6)
    hit = assign_hit(alice)
    calls: list[str] = []
    original = rendering.render_markdown
    monkeypatch.setattr(rendering, "render_markdown", lambda text: calls.append(text) or original(text))

    alice_client.get(reverse("hit", args=[hit.pk]) + "?sample=1")
    assert len(calls) >= 3, "instruction and both responses rendered on the first view"
    # A rating's answer carries the next sample (2) too: view it once first, so its texts are stored as well.
    alice_client.get(reverse("hit", args=[hit.pk]) + "?sample=2")
    first_view = len(calls)
    for rating in (-2, 1, 2):
        response = alice_client.post(
            reverse("hit_rate", args=[hit.pk]), {"position": 1, "rating": rating}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
    alice_client.get(reverse("hit", args=[hit.pk]) + "?sample=1")

    assert len(calls) == first_view, "rating clicks and later views reuse the stored HTML"
    assert len(calls) == len(set(calls)), "no text rendered twice"
    assert RenderedMarkdown.objects.count() >= 3


def test_a_changed_text_is_rendered_afresh():
    assert rendering.render_markdown_cached(["**a**"]) == ["<p><strong>a</strong></p>\n"]
    assert rendering.render_markdown_cached(["**b**", "**a**"]) == [
        "<p><strong>b</strong></p>\n",
        "<p><strong>a</strong></p>\n",
    ]
    assert RenderedMarkdown.objects.count() == 2


# Bidirectional control characters ------------------------------------------------------------------------------


def test_a_right_to_left_override_is_shown_as_a_visible_marker():
    """The fault: U+202E made "evil" show as "live"."""
    html = render_markdown('I am not \u202elive\u202c, trust me. `x\u2066y` [a](https://e.org "t\u202et")')

    assert "\u202e" not in html and "\u202c" not in html and "\u2066" not in html
    assert (
        '<span class="bidi-mark" title="U+202E RIGHT-TO-LEFT OVERRIDE">⟨U+202E⟩</span>live'
        '<span class="bidi-mark" title="U+202C POP DIRECTIONAL FORMATTING">⟨U+202C⟩</span>'
    ) in html
    assert '<code>x<span class="bidi-mark" title="U+2066 LEFT-TO-RIGHT ISOLATE">⟨U+2066⟩</span>y</code>' in html
    assert 'title="t⟨U+202E⟩t"' in html, "inside an attribute, plain text (no markup)"
    for char in rendering.BIDI_CONTROLS:
        assert char not in render_markdown(f"a{char}b")


def test_the_hit_page_isolates_response_text(alice, alice_client):
    batch = factories.make_batch("bidi", 1)
    Item.objects.filter(batch=batch).update(response_1="evil \u202eevil")
    hit = assign_hit(alice)

    html = alice_client.get(reverse("hit", args=[hit.pk])).content.decode()

    assert "\u202e" not in html and "⟨U+202E⟩</span>evil" in html
    assert html.count('<div class="markdown" dir="auto">') >= 3
