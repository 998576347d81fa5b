"""Numbers from outside (query parameters, form fields, path ids) follow one rule (rlhf.numbers): ASCII digits
within the column's range. "²" passes str.isdigit() and fails int(); 2**31 passes int() and fails the column.
Each answered 500 before; now 400 or 404 (or the page's own message)."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotate.models import Batch
from annotate.services import assign_hit
from rlhf.numbers import INT32_MAX, INT64_MAX, parse_id, parse_whole_number
from tests.annotate.factories import make_batch

pytestmark = pytest.mark.django_db


UNREADABLE = [None, "", "²", "①", "٣", "+2", "02", " 2", "2 ", "2.0", "1_000", "0x10", "--1"]
UNREADABLE += [str(INT64_MAX + 1), "9" * 400]


@pytest.mark.parametrize("text", UNREADABLE)
def test_the_rule_refuses_everything_but_plain_digits_in_range(text):
    assert parse_whole_number(text) is None


def test_the_rule_reads_plain_digits_within_the_bounds():
    assert parse_whole_number("0") == 0 and parse_whole_number("-17") == -17
    assert parse_whole_number(str(INT64_MAX)) == INT64_MAX
    assert parse_whole_number(str(INT32_MAX + 1), maximum=INT32_MAX) is None
    assert parse_id("0") is None and parse_id("1") == 1


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize("value", ["²", "٣", "1.5", "-1", "0", str(INT64_MAX + 1)])
def test_an_id_filter_answers_400_for_a_number_it_cannot_read(alice, value):
    make_batch()
    response = api(alice).get("/api/judgments/", {"batch": value})
    assert response.status_code == 400
    assert "Expected ids between 1 and" in response.json()["batch"][0]


def test_a_hit_path_id_in_unicode_digits_is_not_found(alice):
    make_batch()
    assert api(alice).post("/api/hits/%C2%B2/rate/", {"position": 1, "rating": 1}, format="json").status_code == 404


@pytest.mark.parametrize("sample", ["²", "٣", str(INT32_MAX + 1), ""])
def test_the_hit_page_answers_404_for_a_sample_it_cannot_read(alice, alice_client, sample):
    make_batch()
    hit = assign_hit(alice)
    assert alice_client.get(f"/hit/{hit.pk}/", {"sample": sample}).status_code == 404
    assert alice_client.get(f"/hit/{hit.pk}/", {"sample": "1"}).status_code == 200


@pytest.mark.parametrize("value", ["²", "٣", str(INT64_MAX + 1)])
def test_recording_time_answers_400_for_a_number_it_cannot_read(alice, alice_client, value):
    make_batch()
    hit = assign_hit(alice)
    response = alice_client.post(f"/hit/{hit.pk}/time/", {"position": value, "elapsed_ms": value})
    assert response.status_code == 400


@pytest.mark.parametrize("run", ["²", "٣", str(INT64_MAX + 1)])
def test_the_review_page_treats_an_unreadable_run_as_none(charlie_client, run):
    assert charlie_client.get("/dashboard/review/", {"run": run}).status_code == 200


@pytest.mark.parametrize("priority", [str(2**31), str(-(2**31) - 1), "²", "٣", "1.5"])
def test_the_queue_page_refuses_a_priority_beyond_the_column(charlie_client, priority):
    batch = make_batch("urgent", priority=3)
    response = charlie_client.post(f"/dashboard/queue/{batch.pk}/priority/", {"priority": priority}, follow=True)
    assert response.status_code == 200
    assert "must be a whole number between -2147483648 and 2147483647" in response.content.decode()
    assert Batch.objects.get(pk=batch.pk).priority == 3
    charlie_client.post(f"/dashboard/queue/{batch.pk}/priority/", {"priority": str(INT32_MAX)})
    assert Batch.objects.get(pk=batch.pk).priority == INT32_MAX


BAD_BATCH_SETTINGS = [
    ("gold_rate", "5", "A share between 0 and 1."),
    ("gold_rate", "-3", "A share between 0 and 1."),
    ("samples_per_hit", "0", "A HIT needs at least one sample."),
    ("overlap", "0", "Each item needs at least one annotator."),
    ("priority", str(2**31), "less than or equal to 2147483647"),
]


def admin_batch_form(**changes) -> dict:
    fields = {
        "name": "from-admin",
        "kind": "pairwise",
        "guidelines": "",
        "samples_per_hit": "6",
        "overlap": "1",
        "gold_rate": "0",
        "active": "on",
        "priority": "0",
        "assignment_order": "import",
        "exploration_share": "0.2",
        "created_at_0": "2026-12-07",
        "created_at_1": "12:00:00",
    }
    return {**fields, **changes}


@pytest.mark.parametrize(("field", "value", "message"), BAD_BATCH_SETTINGS)
def test_the_admin_batch_form_refuses_what_the_api_refuses(charlie_client, charlie, field, value, message):
    page = charlie_client.post("/admin/annotate/batch/add/", admin_batch_form(**{field: value}))
    assert page.status_code == 200 and message in page.content.decode()
    response = api(charlie).post("/api/batches/", {"name": "from-api", field: value}, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not Batch.objects.exists()


def test_the_admin_batch_form_saves_good_settings(charlie_client):
    response = charlie_client.post("/admin/annotate/batch/add/", admin_batch_form(gold_rate="0.5", overlap="3"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Batch.objects.get().overlap == 3


def test_anonymous_visitors_still_go_to_the_login_page():
    assert Client().get("/dashboard/review/", {"run": "²"}).status_code == 302
