"""Ranking batches through the API: kind, ranking size and ties on create and change, and ranking records added."""

from __future__ import annotations

from annotate.models import Batch
from tests.annotate.factories import make_ranking_batch


def ranking_record(n: int, size: int = 3, **extra) -> dict:
    return {"prompt": f"Question {n}?", "responses": [f"answer {k}" for k in range(1, size + 1)], **extra}


def test_staff_create_a_ranking_batch(clients):
    response = clients["charlie"].post(
        "/api/batches/", {"name": "ranked", "kind": "ranking", "ranking_size": 4, "allow_ties": True}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["ranking_size"], body["allow_ties"]) == ("ranking", 4, True)
    assert Batch.objects.get(name="ranked").is_ranking


def test_kind_settings_are_validated(clients, db):
    client = clients["charlie"]
    bad_pairwise = client.post("/api/batches/", {"name": "p", "ranking_size": 4, "allow_ties": True}, format="json")
    assert bad_pairwise.status_code == 400
    assert set(bad_pairwise.json()) == {"ranking_size", "allow_ties"}
    too_big = client.post("/api/batches/", {"name": "r", "kind": "ranking", "ranking_size": 10}, format="json")
    assert too_big.status_code == 400 and "ranking_size" in too_big.json()
    batch = make_ranking_batch("filled", n_items=2, size=4)
    to_pairwise = client.patch(f"/api/batches/{batch.pk}/", {"kind": "pairwise", "ranking_size": None}, format="json")
    assert to_pairwise.status_code == 400 and "keeps its kind" in to_pairwise.json()["kind"][0]
    resized = client.patch(f"/api/batches/{batch.pk}/", {"ranking_size": 5}, format="json")
    assert resized.status_code == 400
    assert resized.json()["ranking_size"] == ["The batch has items with 4 responses; every item must have 5."]
    per_item = client.patch(f"/api/batches/{batch.pk}/", {"ranking_size": None, "allow_ties": True}, format="json")
    assert per_item.status_code == 200, per_item.content


def test_annotators_see_the_kind(clients, db):
    make_ranking_batch("seen", n_items=1, size=3)
    result = clients["alice"].get("/api/batches/").json()["results"][0]
    assert (result["kind"], result["ranking_size"], result["allow_ties"]) == ("ranking", 3, False)


def test_ranking_records_are_added_to_a_ranking_batch(clients, db):
    batch = Batch.objects.create(name="api", kind=Batch.Kind.RANKING, ranking_size=3)
    url = f"/api/batches/{batch.pk}/items/"
    bad = clients["charlie"].post(url, [ranking_record(1), ranking_record(2, size=4)], format="json")
    assert bad.status_code == 400
    assert (bad.json()["record"], bad.json()["field"]) == (2, "responses")
    good = clients["charlie"].post(url, [ranking_record(1, ranking=[2, 3, 1])], format="json")
    assert good.status_code == 201, good.content
    assert good.json()["format"] == "ranking"
    assert batch.items.get().source["ranking"] == [[2], [3], [1]]


def test_judgments_api_shows_rankings_to_staff_and_annotators(clients, alice, db):
    from annotate.models import Judgment

    batch = make_ranking_batch("judged", n_items=1, size=3)
    item = batch.items.get()
    Judgment.objects.create(item=item, annotator=alice, ranking=[[3], [1], [2]], display_order=[2, 3, 1])
    [staff] = clients["charlie"].get("/api/judgments/").json()["results"]
    assert (staff["rating"], staff["chosen"], staff["strength"]) == (None, None, None)
    assert (staff["ranking"], staff["display_order"]) == ([[3], [1], [2]], [2, 3, 1])
    [own] = clients["alice"].get("/api/judgments/").json()["results"]
    assert own["ranking"] == [[2], [3], [1]], "as ranked on screen: B (item 3), C (item 1), A (item 2)"
    assert (own["rating"], own["rating_label"], own["chosen"]) == (None, None, None)
    assert "display_order" not in own and "swapped" not in own


def test_items_api_shows_all_responses_and_refuses_a_pairwise_gold(clients, db):
    batch = make_ranking_batch("items", n_items=1, size=4)
    item = batch.items.get()
    body = clients["charlie"].get(f"/api/items/{item.pk}/").json()
    assert (body["response_1"], body["more_responses"]) == ("answer 1 to 0", ["answer 3 to 0", "answer 4 to 0"])
    refused = clients["charlie"].patch(f"/api/items/{item.pk}/", {"gold": 2}, format="json")
    assert refused.status_code == 400 and "ranking item" in refused.json()["gold"][0]
