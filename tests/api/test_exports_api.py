"""The export endpoint streams the same file the dashboard and the command write."""

from __future__ import annotations

import io
import json

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
