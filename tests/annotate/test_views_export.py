"""The export form: staff only, a streamed download of the chosen batches and format."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from django.urls import reverse

from annotate.models import Batch, Item, Judgment

pytestmark = pytest.mark.django_db


@pytest.fixture
def batches(alice, bob):
    made = []
    for name in ("first", "second"):
        batch = Batch.objects.create(name=name)
        item = Item.objects.create(
            batch=batch, external_id=f"{name}-1", prompt=[{"role": "user", "content": f"Prompt of {name}"}],
            response_1="One", response_2="Two",
        )  # fmt: skip
        Judgment.objects.create(item=item, annotator=alice, rating=2, time_ms=5000)
        Judgment.objects.create(item=item, annotator=bob, rating=-1, time_ms=5000)
        made.append(batch)
    return made


def download(client, **params):
    response = client.get(reverse("quality:export"), params)
    assert response.status_code == 200, response.content[:500]
    assert response.streaming
    return response, b"".join(response.streaming_content)


def test_annotators_cannot_download(alice_client, batches):
    response = alice_client.get(reverse("quality:export"), {"format": "trl"})
    assert response.status_code == 403


def test_staff_see_the_form(charlie_client, batches):
    response = charlie_client.get(reverse("quality:export"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'type="checkbox" name="batches" value="first"' in html and "first (1 item, 2 judgments)" in html
    assert 'value="trl-conversational"' in html


def test_trl_download_of_one_batch(charlie_client, batches):
    response, content = download(charlie_client, batches="second", format="trl")
    assert response["Content-Disposition"] == 'attachment; filename="preferences-second-trl.jsonl"'
    lines = [json.loads(line) for line in content.decode().splitlines()]
    assert [(r["prompt"], r["chosen"], r["rejected"], r["margin"]) for r in lines] == [
        ("Prompt of second", "Two", "One", 1.0),
        ("Prompt of second", "One", "Two", 0.0),
    ]


def test_majority_raw_and_usernames_options(charlie_client, batches):
    _, content = download(charlie_client, format="raw", usernames="on", annotators="bob", since="2020-01-01")
    assert [json.loads(line)["annotator"] for line in content.decode().splitlines()] == ["bob", "bob"]
    _, content = download(charlie_client, format="trl", aggregate="agreed")
    assert content == b""  # alice and bob disagree on both items


def test_parquet_and_csv_downloads(charlie_client, batches):
    response, content = download(charlie_client, batches=["first", "second"], format="parquet", table="raw")
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(content)).column("item_id").to_pylist() == ["first-1"] * 2 + ["second-1"] * 2
    response, content = download(charlie_client, format="csv")
    assert response["Content-Type"].startswith("text/csv")
    assert content.decode().count("\n") == 5


def test_a_reversed_date_range_shows_the_filters_message_on_until(charlie_client, batches):
    response = charlie_client.get(
        reverse("quality:export"), {"format": "trl", "since": "2024-02-01", "until": "2024-01-01"}
    )
    assert "until (2024-01-01) must not be before since (2024-02-01)." in response.content.decode()


def test_bad_options_show_the_form_with_the_error(charlie_client, batches):
    response = charlie_client.get(reverse("quality:export"), {"format": "trl", "annotators": "zed"})
    assert response.status_code == 400
    assert "No annotator named &#x27;zed&#x27;" in response.content.decode()
    response = charlie_client.get(reverse("quality:export"), {"format": "trl", "batches": "nope"})
    assert response.status_code == 400 and "nope" in response.content.decode()
