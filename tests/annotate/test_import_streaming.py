"""Imports that stay flat in memory whatever the file holds (issue 19 items 10 and 11): a gzip bomb of newlines is
decided by its unpacked size and never kept, and a JSON array is parsed as it streams."""

from __future__ import annotations

import gzip
import io
import json
import tracemalloc

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.importers import ImportFileError, import_comparisons, iter_records
from annotate.models import Batch, ImportJob

pytestmark = pytest.mark.django_db

IMPORT_URL = reverse("admin:annotate_batch_import")
PAIR = {"prompt": "What colour is the sky?", "response_1": "Blue.", "response_2": "Green."}


def pairs(n: int) -> list[dict]:
    return [{**PAIR, "id": f"p{i}"} for i in range(1, n + 1)]


def jsonl(records: list) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def peak_bytes(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_small_gzip_that_unpacks_past_the_threshold_is_imported_by_the_task(charlie_client, settings):
    """The fault: the 2 MiB threshold compared compressed bytes, so a 300 KB gzip of 300 MB stayed in the request."""
    settings.IMPORT_BACKGROUND_BYTES = 10_000
    packed = gzip.compress(b"\n" * 1_000_000 + jsonl(pairs(2)))
    assert len(packed) < settings.IMPORT_BACKGROUND_BYTES
    data = {"file": SimpleUploadedFile("bomb.jsonl.gz", packed), "batch_name": "bomb", "format": "auto"}

    response = charlie_client.post(IMPORT_URL, data)

    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:annotate_batch_import_job", args=[job.pk])
    assert not Batch.objects.exists(), "nothing imported in the request"


def test_a_small_gzip_that_unpacks_small_stays_in_the_request(charlie_client, settings):
    settings.IMPORT_BACKGROUND_BYTES = 10_000
    data = {"file": SimpleUploadedFile("s.jsonl.gz", gzip.compress(jsonl(pairs(3)))), "batch_name": "s"}

    response = charlie_client.post(IMPORT_URL, {**data, "format": "auto"})

    assert not ImportJob.objects.exists()
    assert response.status_code == 302 and Batch.objects.get(name="s").items.count() == 3


def test_blank_lines_are_skipped_without_being_kept(tmp_path):
    """The fault: iter_records kept every blank line before the first record (≈ 5.5 GB at the 256 MiB limit)."""
    path = tmp_path / "blank.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n" * 4_000_000 + jsonl(pairs(2)) + b"  \n\n" * 1000 + jsonl(pairs(3)[2:])))

    result: list = []
    peak = peak_bytes(lambda: result.append(import_comparisons(path, "blank")))

    assert result[0].count == 3
    assert peak < 2_000_000, f"peak {peak:,} bytes for 4 MB of newlines"
    with pytest.raises(ImportFileError, match=r"^line 4001005: malformed JSON"):
        import_comparisons(io.BytesIO(jsonl(pairs(1)) + b"\n" * 4_001_003 + b"{oops\n"), "bad")


def test_a_json_array_is_parsed_as_it_streams(tmp_path):
    """The fault: a JSON array was parsed whole (a 200 MB array: 843-1,165 MB peak in the worker)."""
    path = tmp_path / "big.json"
    path.write_text(json.dumps(pairs(6_000), indent=1))

    count = 0

    def read_all() -> None:
        nonlocal count
        for count, _record in enumerate(iter_records(open(path, "rb")), start=1):  # noqa: B007, SIM115
            pass

    peak = peak_bytes(read_all)
    assert count == 6_000
    assert peak < 1_000_000, f"peak {peak:,} bytes for a {path.stat().st_size:,}-byte array"


def test_a_json_array_on_one_line_streams_too(tmp_path):
    path = tmp_path / "one-line.json"
    path.write_text(json.dumps(pairs(6_000)))
    peak = peak_bytes(lambda: sum(1 for _ in iter_records(open(path, "rb"))))  # noqa: SIM115
    assert peak < 1_000_000, f"peak {peak:,} bytes"
    path.write_text(json.dumps(pairs(3)))
    assert import_comparisons(path, "one-line").count == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" + json.dumps(PAIR) + ",\n 2]", r"^record 2: expected a JSON object, got a number"),
        ("\n\n[" + json.dumps(PAIR) + ',\n {"prompt": ]', r"^line 4: malformed JSON"),
        ("[" + json.dumps(PAIR) + "] [1]", r"^line 1: malformed JSON: parse error: trailing garbage"),
        ("[" + json.dumps(PAIR) + ",\n", r"^line 1: malformed JSON: parse error: premature EOF"),
        ('[{"prompt": "Q", "response_1": "a", "response_2": NaN}]', r"^line 1: malformed JSON"),
        ('[{"prompt": "Q", "response_1": "\xff"}]', r"^line 1: malformed JSON"),
    ],
)
def test_a_bad_json_array_names_the_record_or_line(text, message):
    source = text.encode("latin-1") if "\xff" in text else text.encode()
    with pytest.raises(ImportFileError, match=message):
        import_comparisons(io.BytesIO(source), "bad")
    assert not Batch.objects.exists()


def test_a_json_array_keeps_its_values_as_json_reads_them():
    text = '\ufeff[{"prompt": "Q ✓", "response_1": "1.5", "response_2": "x", "id": 7}]'
    [record] = iter_records(text)
    assert record.data == {"prompt": "Q ✓", "response_1": "1.5", "response_2": "x", "id": 7}
    assert record.where == "record 1"
