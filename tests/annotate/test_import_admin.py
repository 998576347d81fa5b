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


def test_staff_set_a_new_batchs_guidelines_overlap_and_samples_per_hit(charlie_client):
    data = {"file": upload("prefs.jsonl", TRL), "batch_name": "briefed", "format": "auto"}
    data.update(guidelines="Pick the **kinder** answer.", overlap="3", samples_per_hit="4")

    charlie_client.post(IMPORT_URL, data)

    batch = Batch.objects.get(name="briefed")
    assert (batch.guidelines, batch.overlap, batch.samples_per_hit) == ("Pick the **kinder** answer.", 3, 4)
    # Left empty: the batch defaults.
    charlie_client.post(IMPORT_URL, {"file": upload("prefs.jsonl", TRL), "batch_name": "plain", "format": "auto"})
    plain = Batch.objects.get(name="plain")
    assert (plain.guidelines, plain.overlap, plain.samples_per_hit) == ("", 1, 6)


def test_new_batch_settings_are_checked_and_refused_for_an_existing_batch(charlie_client):
    data = {"file": upload("prefs.jsonl", TRL), "batch_name": "capped", "format": "auto", "overlap": "0"}
    page = charlie_client.post(IMPORT_URL, {**data, "samples_per_hit": "100000"}).content.decode()
    assert "greater than or equal to 1" in page and "less than or equal to 200" in page
    assert not Batch.objects.filter(name="capped").exists()

    Batch.objects.create(name="existing", overlap=2)
    data = {"file": upload("prefs.jsonl", TRL), "batch_name": "existing", "format": "auto", "overlap": "5"}
    page = charlie_client.post(IMPORT_URL, data).content.decode()
    assert "exists, and overlap can only be set for a new batch" in page
    assert Batch.objects.get(name="existing").overlap == 2 and not Item.objects.exists()


def test_a_background_import_keeps_the_new_batchs_settings(charlie_client, settings):
    settings.IMPORT_BACKGROUND_BYTES = 10
    data = {"file": upload("prefs.jsonl", TRL), "batch_name": "later", "format": "auto", "overlap": "2"}
    response = charlie_client.post(IMPORT_URL, {**data, "guidelines": "Be kind."}, follow=True)
    # The job page says what the job waits for: its message was never sent here (no commit, so no dispatch) ...
    assert "Queued — waiting for the task queue" in response.content.decode()

    from django.utils import timezone

    from annotate.import_jobs import run_import_job
    from annotate.models import ImportJob

    job = ImportJob.objects.get()
    # ... and once the message is with the broker, for a light worker (none runs in this test).
    ImportJob.objects.filter(pk=job.pk).update(dispatched_at=timezone.now())
    page = charlie_client.get(response.redirect_chain[-1][0]).content.decode()
    assert "Queued: waiting for a light worker (queue celery) to start it." in page
    assert job.batch_settings == {"guidelines": "Be kind.", "overlap": 2, "samples_per_hit": None}
    run_import_job(job.pk)
    batch = Batch.objects.get(name="later")
    assert (batch.guidelines, batch.overlap) == ("Be kind.", 2)


def test_the_command_sets_and_checks_a_new_batchs_settings(tmp_path):
    from django.core.management import CommandError, call_command

    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in TRL))
    call_command("import_comparisons", str(path), batch="cli", overlap=2, samples_per_hit=3, guidelines="Be kind.")
    batch = Batch.objects.get(name="cli")
    assert (batch.guidelines, batch.overlap, batch.samples_per_hit) == ("Be kind.", 2, 3)
    with pytest.raises(CommandError, match=r"overlap must be a whole number in \[1, 50\], got 51"):
        call_command("import_comparisons", str(path), batch="too-wide", overlap=51)
    assert not Batch.objects.filter(name="too-wide").exists()
