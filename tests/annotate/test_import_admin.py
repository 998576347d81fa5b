"""The "Import comparisons" upload in the Batch admin."""

import gzip
import json

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import Batch, Item, Judgment

pytestmark = pytest.mark.django_db

IMPORT_URL = reverse("admin:annotate_batch_import")


def upload(name: str, records: list, gz: bool = False) -> SimpleUploadedFile:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()
    return SimpleUploadedFile(name, gzip.compress(text) if gz else text)


TRL = [
    {"prompt": "What colour is the sky?", "chosen": "Blue.", "rejected": "Green."},
    {"prompt": "What colour is grass?", "chosen": "Green.", "rejected": "Purple."},
]


def test_batch_list_links_to_the_import_form(charlie_client):
    response = charlie_client.get(reverse("admin:annotate_batch_changelist"))

    assert response.status_code == 200
    assert f'href="{IMPORT_URL}"' in response.content.decode()
    form = charlie_client.get(IMPORT_URL)
    assert form.status_code == 200
    page = form.content.decode()
    for field in ('name="file"', 'name="batch_name"', 'name="format"', 'name="as_judgments"', 'name="active"'):
        assert field in page


def test_staff_upload_imports_the_file_as_judgments(charlie_client, charlie):
    data = {"file": upload("prefs.jsonl.gz", TRL, gz=True), "batch_name": "uploaded", "format": "auto"}
    data["as_judgments"] = "on"

    response = charlie_client.post(IMPORT_URL, data, follow=True)

    batch = Batch.objects.get(name="uploaded")
    assert response.redirect_chain[-1][0] == reverse("admin:annotate_batch_change", args=[batch.pk])
    assert "Imported 2 items into batch uploaded." in response.content.decode()
    assert batch.created_by == charlie
    assert batch.items.count() == 2
    judgments = Judgment.objects.select_related("item", "annotator")
    assert [j.annotator.username for j in judgments] == [settings.IMPORT_USERNAME] * 2
    assert sorted(j.chosen_text for j in judgments) == ["Blue.", "Green."]
    assert all(j.rating == j.item.gold for j in judgments)
    assert not batch.active, "the answers are known: nothing to ask annotators unless staff say so"
    assert "The batch is inactive" in response.content.decode()


@pytest.mark.parametrize("choice, active", [("yes", True), ("no", False)])
def test_staff_choose_whether_the_imported_batch_is_active(charlie_client, choice, active):
    data = {"file": upload("prefs.jsonl", TRL), "batch_name": "chosen", "format": "auto", "as_judgments": "on"}

    charlie_client.post(IMPORT_URL, {**data, "active": choice})

    assert Batch.objects.get(name="chosen").active is active


def test_upload_without_answers_is_active_by_default(charlie_client):
    charlie_client.post(IMPORT_URL, {"file": upload("prefs.jsonl", TRL), "batch_name": "ask", "format": "auto"})

    assert Batch.objects.get(name="ask").active


def test_bad_upload_shows_the_error_and_imports_nothing(charlie_client):
    bad = [TRL[0], {"prompt": "Q", "chosen": 3, "rejected": "no"}]
    data = {"file": upload("bad.jsonl", bad), "batch_name": "broken", "format": "auto"}

    response = charlie_client.post(IMPORT_URL, data)

    assert response.status_code == 200
    page = response.content.decode()
    assert "bad.jsonl: line 2, field &#x27;chosen&#x27;: expected a string, got a number" in page
    assert "Nothing was imported." in page
    assert not Batch.objects.exists() and not Item.objects.exists()


def test_wrong_format_choice_shows_the_missing_field(charlie_client):
    data = {"file": upload("prefs.jsonl", TRL), "batch_name": "x", "format": "alpacafarm"}

    response = charlie_client.post(IMPORT_URL, data)

    assert "line 1, field &#x27;instruction&#x27;: missing" in response.content.decode()
    assert not Batch.objects.exists()


def test_annotator_cannot_reach_the_import(alice_client):
    assert alice_client.get(IMPORT_URL).status_code == 302  # to the admin login

    response = alice_client.post(IMPORT_URL, {"file": upload("p.jsonl", TRL), "batch_name": "x", "format": "auto"})

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
    assert not Batch.objects.exists() and not Item.objects.exists()


def test_staff_without_add_permission_is_refused(client, bob):
    bob.is_staff = True
    bob.save()
    client.force_login(bob)

    response = client.post(IMPORT_URL, {"file": upload("p.jsonl", TRL), "batch_name": "x", "format": "auto"})

    assert response.status_code == 403
    assert not Batch.objects.exists()
