"""User-chosen plain text (batch names, item ids, import file names) shows its bidirectional controls as the HIT's
prompts and responses do: as visible ⟨U+XXXX⟩ markers, never raw (a raw U+202E reorders what follows on screen)."""

from __future__ import annotations

import pytest

from annotate.models import ImportJob
from annotate.rendering import BIDI_CONTROLS
from annotate.services import assign_hit
from tests.annotate.factories import make_batch

pytestmark = pytest.mark.django_db

NAME = "evil\u202eexe.txt \u2066isolate\u2069 \u200f"


def assert_shown(page: str) -> None:
    assert not any(char in page for char in BIDI_CONTROLS), "a raw bidirectional control reached the page"
    assert "evil⟨U+202E⟩exe.txt ⟨U+2066⟩isolate⟨U+2069⟩ ⟨U+200F⟩" in page


def test_the_annotators_hit_title_shows_the_controls_of_the_batch_name(alice, alice_client):
    make_batch(NAME)
    hit = assign_hit(alice)
    assert_shown(alice_client.get(f"/hit/{hit.pk}/").content.decode())


@pytest.mark.parametrize(
    "url",
    [
        "/dashboard/queue/",
        "/dashboard/quality/",
        "/dashboard/quality/batch/{pk}/",
        "/dashboard/ordering/{pk}/",
        "/dashboard/reward/new/",
        "/dashboard/policy/new/sft/",
        "/admin/annotate/batch/",
        "/admin/annotate/item/",
        "/admin/annotate/hit/",
    ],
)
def test_staff_pages_show_the_controls_of_the_batch_name(charlie_client, alice, url):
    batch = make_batch(NAME)
    assign_hit(alice)
    response = charlie_client.get(url.format(pk=batch.pk))
    assert response.status_code == 200, url
    assert_shown(response.content.decode())


def test_the_item_id_and_import_job_names_are_shown_with_their_controls(charlie_client):
    batch = make_batch("plain", n_items=1)
    batch.items.update(external_id="id\u202e1")
    job = ImportJob.objects.create(file_name="f\u202e.jsonl", batch_name=NAME, size_bytes=1)
    items = charlie_client.get("/admin/annotate/item/").content.decode()
    assert "id⟨U+202E⟩1" in items and "\u202e" not in items
    page = charlie_client.get(f"/admin/annotate/batch/import/{job.pk}/").content.decode()
    assert "f⟨U+202E⟩.jsonl" in page and "\u202e" not in page
