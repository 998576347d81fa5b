"""The export endpoint streams the same file the dashboard and the command write."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotate.export import export_preferences
from annotate.services import assign_hit, rate_item


def judged(alice, batch) -> None:
    hit = assign_hit(alice)
    for slot in hit.ordered_slots():
        rate_item(hit, slot.position, 2 if slot.position % 2 else -1)


def test_trl_export_streams_one_pair_per_judgment(clients, alice, batch):
    judged(alice, batch)
    response = clients["charlie"].get("/api/exports/preferences/", {"fmt": "trl", "batch": batch.name})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Disposition"] == f'attachment; filename="preferences-{batch.name}-trl.jsonl"'
    body = b"".join(response.streaming_content)
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert len(rows) == 6
    assert set(rows[0]) >= {"prompt", "chosen", "rejected", "margin", "batch", "item_id"}
    expected = io.BytesIO()
    export_preferences(expected, "trl", batches=[batch.name])
    assert body == expected.getvalue(), "the same bytes as the service writes"


def test_export_filters_and_csv(clients, alice, batch):
    judged(alice, batch)
    response = clients["charlie"].get(
        "/api/exports/preferences/", {"fmt": "csv", "annotator": "alice", "usernames": "true"}
    )
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert response["Content-Type"].startswith("text/csv")
    assert lines[0].startswith("batch,item_id,") and len(lines) == 7
    assert all(",alice," in line for line in lines[1:])


def test_bad_export_options_are_400_naming_the_option(clients, batch):
    response = clients["charlie"].get("/api/exports/preferences/", {"fmt": "xml"})
    assert response.status_code == 400 and "fmt" in response.json()
    response = clients["charlie"].get("/api/exports/preferences/", {"batch": "missing"})
    assert response.status_code == 400 and response.json() == {"detail": "No batch named 'missing'."}
    response = clients["charlie"].get("/api/exports/preferences/", {"min_judgments": 0})
    assert "min_judgments" in response.json()


def test_a_reversed_date_range_is_refused_alike_by_the_api_and_the_command(clients, alice, batch):
    """ExportFilters checks since <= until itself: the API and the command no longer export an empty range."""
    judged(alice, batch)
    message = "until (2024-01-01) must not be before since (2024-02-01)."
    response = clients["charlie"].get(
        "/api/exports/preferences/", {"fmt": "trl", "since": "2024-02-01", "until": "2024-01-01"}
    )
    assert response.status_code == 400 and response.json()["until"] == [message]
    with pytest.raises(CommandError, match=r"until \(2024-01-01\) must not be before since \(2024-02-01\)"):
        call_command(
            "export_preferences", "--format", "trl", "--since", "2024-02-01", "--until", "2024-01-01",
            stdout=io.StringIO(),
        )  # fmt: skip
    same_day = clients["charlie"].get(
        "/api/exports/preferences/", {"fmt": "trl", "since": "2024-01-01", "until": "2024-01-01"}
    )
    assert same_day.status_code == 200, "a bare date as until includes that day"
