"""An API client does what the HIT page does: next -> rate 6 -> submit, in screen orientation."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import Hit, HitSlot, Judgment, Rating


def start_hit(client) -> dict:
    response = client.post("/api/hits/next/")
    assert response.status_code == 200, response.content
    return response.json()


def test_next_rate_six_submit_stores_judgments_in_item_orientation(clients, batch, alice):
    client = clients["alice"]
    hit = start_hit(client)
    assert [s["position"] for s in hit["samples"]] == [1, 2, 3, 4, 5, 6]
    # Fix the sides so the test knows which sample is swapped on screen.
    HitSlot.objects.filter(hit_id=hit["id"]).update(swapped=False)
    HitSlot.objects.filter(hit_id=hit["id"], position=1).update(swapped=True)
    swapped_item = HitSlot.objects.get(hit_id=hit["id"], position=1).item

    shown = client.get(f"/api/hits/{hit['id']}/").json()
    first = shown["samples"][0]
    assert first["instruction"] == swapped_item.instruction
    assert first["response_1"] == swapped_item.response_2, "screen response 1 is the item's response 2"
    assert first["response_2"] == swapped_item.response_1
    assert "swapped" not in json.dumps(shown), "the API never says which side was swapped"

    # Screen +2 ("AI Response 2 is better") on the swapped sample = the item's response 1 is better.
    ratings = {1: 2, 2: 2, 3: -1, 4: 1, 5: -2, 6: 2}
    for position, rating in ratings.items():
        response = client.post(
            f"/api/hits/{hit['id']}/rate/", {"position": position, "rating": rating, "elapsed_ms": 1500}, format="json"
        )
        assert response.status_code == 200, response.content
        saved = response.json()
        assert (saved["position"], saved["rating"]) == (position, rating), "ratings come back as clicked"
    assert response.json()["completed"] == 6

    response = client.post(f"/api/hits/{hit['id']}/submit/")
    assert response.status_code == 200, response.content
    assert response.json()["is_submitted"] is True
    assert Hit.objects.get(pk=hit["id"]).submitted_at is not None

    stored = Judgment.objects.get(item=swapped_item, annotator=alice)
    assert stored.rating == Rating.RESPONSE_1_BETTER and stored.swapped is True
    assert stored.chosen_text == swapped_item.response_1
    unswapped = Judgment.objects.get(hit_id=hit["id"], item__slots__position=2)
    assert unswapped.rating == Rating.RESPONSE_2_BETTER and unswapped.swapped is False
    assert Judgment.objects.filter(annotator=alice).count() == 6

    listed = client.get("/api/judgments/", {"hit": hit["id"]}).json()
    assert listed["count"] == 6
    assert {row["rating"] for row in listed["results"] if row["item"] == swapped_item.pk} == {2}, "as clicked"


def test_annotators_never_learn_which_side_was_swapped(clients, batch, alice):
    """The judgments API answers an annotator in screen orientation, as the HIT API does; staff see the item's."""
    client = clients["alice"]
    hit = start_hit(client)
    HitSlot.objects.filter(hit_id=hit["id"]).update(swapped=False)
    HitSlot.objects.filter(hit_id=hit["id"], position=1).update(swapped=True)
    swapped_item = HitSlot.objects.get(hit_id=hit["id"], position=1).item
    for position, rating in ((1, Rating.RESPONSE_1_BETTER), (2, Rating.RESPONSE_1_BETTER)):
        client.post(f"/api/hits/{hit['id']}/rate/", {"position": position, "rating": rating}, format="json")
    shown = client.get(f"/api/hits/{hit['id']}/").json()["samples"]
    mine = {row["item"]: row for row in client.get("/api/judgments/").json()["results"]}
    for sample, slot in zip(shown[:2], HitSlot.objects.filter(hit_id=hit["id"]).order_by("position"), strict=False):
        row = mine[slot.item_id]
        assert row["rating"] == sample["rating"] == Rating.RESPONSE_1_BETTER
        assert (row["chosen"], row["rating_label"]) == (1, Rating.RESPONSE_1_BETTER.label)
        assert "swapped" not in row
    by_filter = client.get("/api/judgments/", {"rating": Rating.RESPONSE_1_BETTER}).json()
    assert by_filter["count"] == 2, "a filter on the rating cannot single out the swapped sample either"

    staff_view = clients["charlie"].get("/api/judgments/", {"item": swapped_item.pk}).json()["results"][0]
    assert (staff_view["rating"], staff_view["chosen"], staff_view["swapped"]) == (Rating.RESPONSE_2_BETTER, 2, True)


def test_a_sample_given_back_cannot_be_rated_through_the_api(clients, batch, alice, bob, settings):
    settings.HIT_TIMEOUT_MINUTES = 30
    batch.items.exclude(pk__in=batch.items.order_by("pk").values("pk")[:3]).delete()
    hit = start_hit(clients["alice"])
    Hit.objects.filter(pk=hit["id"]).update(last_activity_at=timezone.now() - timedelta(minutes=31))
    bob_hit = start_hit(clients["bob"])
    assert len(bob_hit["samples"]) == 3, "alice's idle HIT gave its items back"
    response = clients["alice"].post(f"/api/hits/{hit['id']}/rate/", {"position": 1, "rating": 2}, format="json")
    assert response.status_code == 400
    assert "given back" in response.json()["position"][0]
    assert not Judgment.objects.filter(annotator=alice).exists()


def test_changing_a_rating_keeps_one_judgment_and_adds_up_time(clients, batch, alice):
    client = clients["alice"]
    hit_id = start_hit(client)["id"]
    url = f"/api/hits/{hit_id}/rate/"
    client.post(url, {"position": 3, "rating": -2, "elapsed_ms": 1000}, format="json")
    client.post(f"/api/hits/{hit_id}/time/", {"position": 3, "elapsed_ms": 250}, format="json")
    response = client.post(url, {"position": 3, "rating": 1, "elapsed_ms": 500}, format="json")
    saved = response.json()
    assert saved["rating"] == 1 and saved["time_ms"] == 1750
    sample = client.get(f"/api/hits/{hit_id}/").json()["samples"][2]
    assert sample["rating"] == 1 and sample["time_ms"] == 1750
    assert Judgment.objects.filter(annotator=alice).count() == 1


def test_bad_ratings_are_400_naming_the_field(clients, batch):
    client = clients["alice"]
    hit_id = start_hit(client)["id"]
    url = f"/api/hits/{hit_id}/rate/"

    response = client.post(url, {"position": 1, "rating": 0}, format="json")
    assert response.status_code == 400 and "rating" in response.json()
    response = client.post(url, {"position": 7, "rating": 2}, format="json")
    assert response.status_code == 400
    assert response.json() == {"position": ["This HIT has no sample 7."]}
    response = client.post(url, {"rating": 2, "elapsed_ms": -5}, format="json")
    assert set(response.json()) == {"position", "elapsed_ms"}
    assert not Judgment.objects.exists()


def test_submit_early_or_rate_after_submit_is_refused(clients, batch):
    client = clients["alice"]
    hit = start_hit(client)
    response = client.post(f"/api/hits/{hit['id']}/submit/")
    assert response.status_code == 400
    assert "6 samples still need a rating" in response.json()["non_field_errors"][0]

    for sample in hit["samples"]:
        client.post(f"/api/hits/{hit['id']}/rate/", {"position": sample["position"], "rating": -1}, format="json")
    assert client.post(f"/api/hits/{hit['id']}/submit/").status_code == 200
    response = client.post(f"/api/hits/{hit['id']}/rate/", {"position": 1, "rating": 2}, format="json")
    assert response.status_code == 400
    assert "submitted" in response.json()["non_field_errors"][0]
    # Stored in item orientation: -1 or +1 depending on each slot's random swap; never the refused 2 (or -2).
    assert {abs(r) for r in Judgment.objects.values_list("rating", flat=True)} == {1}, "no answer changed after submit"


def test_next_returns_the_current_hit_until_submitted_then_204_when_no_work_is_left(clients, batch):
    client = clients["alice"]
    first = start_hit(client)
    assert start_hit(client)["id"] == first["id"]
    for sample in first["samples"]:
        client.post(f"/api/hits/{first['id']}/rate/", {"position": sample["position"], "rating": 2}, format="json")
    client.post(f"/api/hits/{first['id']}/submit/")
    response = client.post("/api/hits/next/")
    assert response.status_code == 204, "the batch's 6 items are all judged (overlap 1)"


def test_token_auth_drives_the_flow(alice, batch):
    out = StringIO()
    call_command("create_api_token", "alice", stdout=out)
    key = out.getvalue().strip()
    client = APIClient()
    assert client.post("/api/hits/next/").status_code == 401

    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    hit = start_hit(client)
    assert hit["annotator"] == "alice"

    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get(f"/api/hits/{hit['id']}/").status_code == 401


def test_a_token_can_be_obtained_with_username_and_password(alice):
    client = APIClient()
    response = client.post("/api/auth/token/", {"username": "alice", "password": "password"}, format="json")
    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/auth/token/").json()["username"] == "alice"
    client.credentials()
    response = client.post("/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    assert response.status_code == 400 and "non_field_errors" in response.json()


def test_session_auth_needs_csrf_for_writes(alice, batch):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get("/api/batches/").status_code == 200
    response = client.post("/api/hits/next/")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
