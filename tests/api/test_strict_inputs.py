"""The API takes what its schema says and nothing else: a rating filter of the scale's values, integers as JSON
integers, no all-tied ranking that would count as complete and give no pair."""

from __future__ import annotations

import pytest

from annotate.models import Hit, Judgment
from annotate.services import assign_hit
from tests.annotate.factories import make_ranking_batch


@pytest.mark.parametrize("rating", ["0.5", "7", "0", "²", "-2.0"])
def test_a_rating_filter_off_the_scale_is_refused(clients, alice_hit, rating):
    for role in ("alice", "charlie"):
        response = clients[role].get("/api/judgments/", {"rating": rating})
        assert response.status_code == 400 and "rating" in response.json(), (role, response.content)


def test_a_rating_filter_on_the_scale_filters(clients, alice_hit):
    clients["alice"].post(f"/api/hits/{alice_hit.pk}/rate/", {"position": 1, "rating": 2}, format="json")
    assert clients["alice"].get("/api/judgments/", {"rating": "2"}).json()["count"] == 1
    assert clients["alice"].get("/api/judgments/", {"rating": "-2"}).json()["count"] == 0


def test_the_schema_says_which_ratings_the_filter_takes(clients):
    schema = clients["charlie"].get("/api/schema/", {"format": "json"}).json()
    parameters = schema["paths"]["/api/judgments/"]["get"]["parameters"]
    rating = next(p for p in parameters if p["name"] == "rating")
    assert rating["schema"]["type"] == "integer" and sorted(rating["schema"]["enum"]) == [-2, -1, 1, 2]


@pytest.fixture
def tied_ranking_hit(alice) -> Hit:
    make_ranking_batch("ties", n_items=2, size=3, samples_per_hit=2, allow_ties=True)
    return assign_hit(alice)


@pytest.mark.parametrize("position", ["1", 1.0, True, "٣"])
def test_a_position_that_is_not_a_json_integer_is_refused(clients, tied_ranking_hit, position):
    body = {"position": position, "ranking": [[2], [1], [3]]}
    response = clients["alice"].post(f"/api/hits/{tied_ranking_hit.pk}/rank/", body, format="json")
    assert response.status_code == 400 and response.json()["position"] == ["A valid integer is required."]
    assert not Judgment.objects.exists()
    # A form-encoded (multipart) body carries text: plain digits only, as the HIT page's forms.
    form = clients["alice"].post(f"/api/hits/{tied_ranking_hit.pk}/time/", {"position": position, "elapsed_ms": 5})
    assert form.status_code == (200 if position == "1" else 400), form.content


def test_a_form_encoded_body_still_carries_positions_as_digits(clients, tied_ranking_hit):
    body = {"position": "1", "ranking": "[[2], [1], [3]]"}
    response = clients["alice"].post(f"/api/hits/{tied_ranking_hit.pk}/rank/", body)
    assert response.status_code == 200, response.content
    assert Judgment.objects.count() == 1


def test_an_all_tied_ranking_is_refused_where_ties_are_allowed(clients, tied_ranking_hit):
    client = clients["alice"]
    response = client.post(
        f"/api/hits/{tied_ranking_hit.pk}/rank/", {"position": 1, "ranking": [[1, 2, 3]]}, format="json"
    )
    assert response.status_code == 400
    assert "all 3 responses are tied in one place" in str(response.json())
    assert not Judgment.objects.exists()
    ok = client.post(f"/api/hits/{tied_ranking_hit.pk}/rank/", {"position": 1, "ranking": [[1, 2], [3]]}, format="json")
    assert ok.status_code == 200 and Judgment.objects.count() == 1
    cleared = client.post(f"/api/hits/{tied_ranking_hit.pk}/rank/", {"position": 2, "ranking": []}, format="json")
    assert cleared.status_code == 200, "an empty draft is still allowed"
