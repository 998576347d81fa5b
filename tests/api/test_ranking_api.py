"""The HIT API for ranking samples: responses as letters in screen order, orders as screen places, the rank action."""

from __future__ import annotations

import dataclasses
import json

import pytest

from annotate.models import Batch, Hit, HitSlot, Judgment
from annotate.selectors import screen_sample_at
from annotate.services import assign_hit
from tests.annotate.factories import make_ranking_batch

DISPLAY_ORDER = [3, 1, 4, 2]  # A = response 3, B = response 1, C = response 4, D = response 2


@pytest.fixture
def ranking_hit(alice) -> Hit:
    make_ranking_batch("api-ranking", n_items=4, size=4, samples_per_hit=4)
    hit = assign_hit(alice)
    hit.slots.update(display_order=DISPLAY_ORDER)
    return hit


def rank(client, hit_id: int, position, ranking, **extra):
    body = {"position": position, "ranking": ranking, "elapsed_ms": 900, **extra}
    return client.post(f"/api/hits/{hit_id}/rank/", body, format="json")


def test_a_ranking_sample_shows_its_responses_as_letters_in_screen_order(clients, ranking_hit):
    hit = clients["alice"].post("/api/hits/next/").json()
    assert hit["id"] == ranking_hit.pk
    sample = hit["samples"][0]
    item = HitSlot.objects.get(hit=ranking_hit, position=1).item
    assert sample["kind"] == "ranking" and sample["instruction"] == item.instruction
    assert sample["responses"] == [
        {"letter": letter, "text": item.response(number)} for letter, number in zip("ABCD", DISPLAY_ORDER, strict=True)
    ]
    assert (sample["response_1"], sample["response_2"], sample["rating"]) == ("", "", None)
    assert (sample["ranking"], sample["ranking_letters"], sample["draft_ranking"], sample["marked"]) == (
        None,
        "",
        None,
        False,
    )
    assert "display_order" not in json.dumps(hit), "the item's own numbering stays on the server"


def test_partial_then_complete_orders_come_back_as_ranked(clients, ranking_hit, alice):
    client = clients["alice"]
    response = rank(client, ranking_hit.pk, 2, [[2], [1]])
    assert response.status_code == 200, response.content
    sample = response.json()["samples"][1]
    assert sample["draft_ranking"] == [[2], [1]] and sample["ranking"] is None and sample["marked"] is False
    assert response.json()["completed"] == 0 and not Judgment.objects.exists()

    response = rank(client, ranking_hit.pk, 2, [[2], [1], [4]])
    sample = response.json()["samples"][1]
    assert sample["ranking"] == [[2], [1], [4], [3]] and sample["ranking_letters"] == "B A D C"
    assert sample["draft_ranking"] is None and sample["marked"] is True
    assert response.json()["completed"] == 1
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.ranking == [[1], [3], [2], [4]], "stored in the item's own numbering"
    assert judgment.display_order == DISPLAY_ORDER and judgment.rating is None
    assert judgment.time_ms == 900, "time goes with the judgment: a draft's time before it is not kept"


def test_rank_every_sample_then_submit(clients, ranking_hit):
    client = clients["alice"]
    for position in range(1, 5):
        assert rank(client, ranking_hit.pk, position, [[4], [3], [2], [1]]).status_code == 200
    response = client.post(f"/api/hits/{ranking_hit.pk}/submit/")
    assert response.status_code == 200 and response.json()["is_submitted"] is True
    assert [j.ranking for j in Judgment.objects.order_by("pk")] == [[[2], [4], [1], [3]]] * 4
    refused = rank(client, ranking_hit.pk, 1, [[1], [2], [3]])
    assert refused.status_code == 400 and "submitted" in refused.json()["non_field_errors"][0]


def test_ties_where_the_batch_allows_them(clients, alice):
    make_ranking_batch("api-ties", n_items=1, size=3, samples_per_hit=1, allow_ties=True)
    hit = assign_hit(alice)
    hit.slots.update(display_order=[2, 3, 1])
    response = rank(clients["alice"], hit.pk, 1, [[1, 3], [2]])
    assert response.status_code == 200, response.content
    assert response.json()["samples"][0]["ranking_letters"] == "(A=C) B"
    assert Judgment.objects.get().ranking == [[2, 1], [3]]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"ranking": [[1], [1]]}, "ranking", "a response appears twice"),
        ({"ranking": [[5]]}, "ranking", "response number 5 is not between 1 and 4"),
        ({"ranking": [[1, 2], [3]]}, "ranking", "ties are not allowed in this batch"),
        ({"ranking": [[True]]}, "ranking", "response number True is not between 1 and 4"),
        ({"ranking": "B A D"}, "ranking", "Write the order as JSON places"),
        ({"ranking": {"B": 1}}, "ranking", "A ranking is a list of places"),
        ({"ranking": [[]]}, "ranking", "non-empty list"),
        ({"position": 9}, "position", "This HIT has no sample 9."),
        ({"position": 0}, "position", "greater than or equal to 1"),
        ({"elapsed_ms": -5}, "elapsed_ms", "greater than or equal to 0"),
    ],
)
def test_bad_orders_are_refused_like_bad_ratings(clients, ranking_hit, body, field, message):
    data = {"position": 1, "ranking": [[1]], **body}
    response = rank(clients["alice"], ranking_hit.pk, **{"position": data.pop("position"), **data})
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field] and message in errors[field][0], errors
    assert not Judgment.objects.exists() and not HitSlot.objects.filter(draft_ranking__isnull=False).exists()


def test_a_missing_order_is_a_field_error(clients, ranking_hit):
    response = clients["alice"].post(f"/api/hits/{ranking_hit.pk}/rank/", {"position": 1}, format="json")
    assert response.status_code == 400 and "ranking" in response.json()


def test_a_form_post_carries_the_order_as_json_text(clients, ranking_hit):
    response = clients["alice"].post(
        f"/api/hits/{ranking_hit.pk}/rank/", {"position": 1, "ranking": "[[2], [1], [4]]"}, format="multipart"
    )
    assert response.status_code == 200, response.content
    assert response.json()["samples"][0]["ranking_letters"] == "B A D C"


def test_each_kind_refuses_the_other_kinds_action(clients, ranking_hit, bob):
    refused = clients["alice"].post(f"/api/hits/{ranking_hit.pk}/rate/", {"position": 1, "rating": 2}, format="json")
    assert refused.status_code == 400 and "is a ranking" in refused.json()["rating"][0]
    Batch.objects.all().delete()
    from tests.api.conftest import make_batch

    make_batch("pairs")
    pairwise = assign_hit(bob)
    refused = rank(clients["bob"], pairwise.pk, 1, [[1], [2]])
    assert refused.status_code == 400 and "is a pairwise comparison" in refused.json()["ranking"][0]
    sample = clients["bob"].get(f"/api/hits/{pairwise.pk}/").json()["samples"][0]
    assert sample["kind"] == "pairwise" and sample["responses"] == [] and sample["ranking"] is None
    assert sample["response_1"] and sample["marked"] is False


def test_only_the_hits_annotator_ranks_it(clients, ranking_hit):
    assert rank(clients["bob"], ranking_hit.pk, 1, [[1], [2], [3]]).status_code == 404
    assert rank(clients["charlie"], ranking_hit.pk, 1, [[1], [2], [3]]).status_code == 403
    assert rank(clients["anonymous"], ranking_hit.pk, 1, [[1], [2], [3]]).status_code == 401
    assert not Judgment.objects.exists()


def test_the_schema_documents_the_rank_action_and_ranking_samples(clients):
    schema = clients["alice"].get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/hits/{id}/rank/"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/Rank")
    components = schema["components"]["schemas"]
    ranking = components["Rank"]["properties"]["ranking"]
    assert ranking["type"] == "array" and ranking["items"]["items"]["type"] == "integer"
    sample = components["Sample"]["properties"]
    assert {"kind", "marked", "responses", "ranking", "ranking_letters", "draft_ranking"} <= set(sample)
    assert sample["ranking"]["nullable"] is True and sample["responses"]["items"]["$ref"].endswith("/ShownResponse")


def test_ranking_judgments_are_listed_for_staff_in_item_order_and_for_their_annotator_as_ranked(
    clients, ranking_hit, alice
):
    rank(clients["alice"], ranking_hit.pk, 1, [[2], [1], [4]])  # B A D C on screen
    mine = clients["alice"].get("/api/judgments/")
    assert mine.status_code == 200, mine.content
    (judgment,) = mine.json()["results"]
    assert judgment["ranking"] == [[2], [1], [4], [3]], "screen places, as the annotator ranked them"
    assert (judgment["rating"], judgment["chosen"], judgment["strength"]) == (None, None, None)
    assert "display_order" not in judgment and "swapped" not in judgment
    staff = clients["charlie"].get("/api/judgments/").json()["results"][0]
    assert staff["ranking"] == [[1], [3], [2], [4]] and staff["display_order"] == DISPLAY_ORDER
    assert (staff["rating"], staff["chosen"], staff["strength"]) == (None, None, None)


def test_the_api_serializes_the_selectors_ranking_sample(clients, ranking_hit):
    """The HIT page and the API draw a ranking sample from the same read model (annotate.selectors)."""
    rank(clients["alice"], ranking_hit.pk, 1, [[2], [1], [4]])
    rank(clients["alice"], ranking_hit.pk, 2, [[3]])
    shown = clients["alice"].get(f"/api/hits/{ranking_hit.pk}/").json()["samples"]
    for position in (1, 2, 3):
        assert shown[position - 1] == dataclasses.asdict(screen_sample_at(ranking_hit, position))
    assert shown[1]["draft_ranking"] == [[3]] and shown[1]["ranking"] is None


def json_schema(node: object) -> object:
    """An OpenAPI 3.0 schema as JSON Schema: `nullable: true` becomes a null alternative."""
    if isinstance(node, list):
        return [json_schema(child) for child in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema(value) for key, value in node.items() if key != "nullable"}
    if not node.get("nullable"):
        return converted
    if "enum" in converted:
        converted["enum"] = [*converted["enum"], None]
    if "type" in converted:
        converted["type"] = [converted["type"], "null"]
        return converted
    return {"anyOf": [converted, {"type": "null"}]}


def test_ranking_samples_and_judgments_answer_as_the_schema_says(clients, ranking_hit):
    """The fuzzing in CI runs on the demo, which may hold no ranking batch: check the ranking shapes here."""
    from jsonschema import Draft202012Validator

    schema = clients["alice"].get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = json_schema(schema["components"])

    def check(component: str, data: object) -> None:
        validator = Draft202012Validator({"$ref": f"#/components/schemas/{component}", "components": components})
        errors = [f"{list(error.path)}: {error.message}" for error in validator.iter_errors(data)]
        assert errors == [], component

    rank(clients["alice"], ranking_hit.pk, 1, [[2], [1], [4]])
    check("Hit", rank(clients["alice"], ranking_hit.pk, 2, [[3]]).json())
    check("PaginatedJudgmentForRoleList", clients["alice"].get("/api/judgments/").json())
    check("PaginatedJudgmentForRoleList", clients["charlie"].get("/api/judgments/").json())
