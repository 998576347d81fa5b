"""Annotation quality through the API: the figures annotate.quality computes, per batch and per annotator.

Three annotators judge four items (two of them gold) with overlap 3; the figures are worked out by hand
below, and every number must equal what annotate.quality returns.
"""

from __future__ import annotations

import dataclasses

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from annotate.models import Batch, Judgment
from annotate.quality import annotator_quality, batch_quality
from tests.api.conftest import make_batch

# Item orientation, toward response 2. Gold: item 0 = +2, item 1 = -1.
RATINGS = {
    "alice": [2, -2, 1, -1],
    "bob": [1, -1, 2, -2],
    "dave": [-2, -1, 2, None],
}
SECONDS = {"alice": 5, "bob": 6, "dave": 1}  # dave is too fast: flagged


@pytest.fixture
def dave(db):
    return get_user_model().objects.create_user("dave", password="password")


@pytest.fixture
def judged(alice, bob, dave) -> Batch:
    batch = make_batch("judged", n_items=4, overlap=3)
    items = list(batch.items.order_by("external_id"))
    items[0].gold, items[1].gold = 2, -1
    for item in items[:2]:
        item.save()
    users = {"alice": alice, "bob": bob, "dave": dave}
    for name, ratings in RATINGS.items():
        for n, (item, rating) in enumerate(zip(items, ratings, strict=True)):
            if rating is not None:
                Judgment.objects.create(
                    item=item, annotator=users[name], rating=rating, swapped=n == 0, time_ms=SECONDS[name] * 1000
                )
    # A reference answer that came with a data set: not an annotator's work, left out of every figure.
    importer = get_user_model().objects.create_user(settings.IMPORT_USERNAME)
    Judgment.objects.create(item=items[3], annotator=importer, rating=2)
    return batch


def as_json(figures) -> dict:
    return {**dataclasses.asdict(figures), "flagged": figures.flagged}


def test_batch_quality_is_what_quality_py_computes(clients, judged, dave):
    response = clients["charlie"].get(f"/api/batches/{judged.pk}/quality/")
    assert response.status_code == 200
    body = response.json()
    expected = batch_quality(judged)

    # By hand: 11 judgments (the import user's left out); items 0-2 have 3 judgments (overlap 3), item 3 two.
    assert body["items"] == 4 and body["judged_items"] == 4 and body["fully_judged"] == 3
    assert body["overlap"] == 3 and body["overlap_reached"] == 0.75
    assert body["judgments"] == 11 and body["mean_judgments_per_item"] == 11 / 4
    # Pairs pointing the same way: item 0 (+ + -) 1 of 3, items 1 and 2 3 of 3, item 3 (- -) 1 of 1.
    assert (body["agreeing_pairs"], body["pairs"], body["agreement"]) == (8, 10, 0.8)
    assert body["alpha"] == expected.alpha and -1 < body["alpha"] <= 1
    assert body["flagged"] == [dave.pk]
    assert body["batch"] == judged.pk and body["batch_name"] == "judged"
    assert body["annotators"] == [as_json(a) for a in expected.annotators]


def test_annotators_list_has_agreement_gold_accuracy_bias_and_flags(clients, judged, alice, dave):
    body = clients["charlie"].get("/api/annotators/").json()
    assert body["count"] == 3
    assert body["results"] == [as_json(a) for a in annotator_quality()]
    by_name = {row["username"]: row for row in body["results"]}

    # alice agrees with the others' majority on items 1-3 (item 0: the others split), and has both gold items right.
    assert by_name["alice"]["agreement"] == 1.0 and by_name["alice"]["comparable"] == 3
    assert by_name["alice"]["gold_accuracy"] == 1.0 and by_name["alice"]["gold_judgments"] == 2
    assert by_name["alice"]["slight_share"] == 0.5 and by_name["alice"]["median_seconds"] == 5.0
    # Shown first: item 0 swapped (chose response 2, shown first), item 1 and 3 response 1 (shown first).
    assert by_name["alice"]["first_shown_share"] == 0.75
    assert by_name["alice"]["longer_share"] == 0.5  # response 2 ("second answer …") is the longer one
    assert by_name["dave"]["agreement"] == pytest.approx(2 / 3) and by_name["dave"]["gold_accuracy"] == 0.5
    assert by_name["dave"]["flagged"] is True and by_name["dave"]["flags"] == ["median 1.0 s per item < 3 s"]
    assert by_name["alice"]["flags"] == [] and by_name["alice"]["flagged"] is False

    flagged = clients["charlie"].get("/api/annotators/", {"flagged": "true"}).json()["results"]
    assert [row["user_id"] for row in flagged] == [dave.pk]
    unflagged = clients["charlie"].get("/api/annotators/", {"flagged": "false"}).json()["results"]
    assert [row["username"] for row in unflagged] == ["alice", "bob"]


def test_annotators_list_over_chosen_batches(clients, judged, alice):
    other = make_batch("other", n_items=2)
    for item in other.items.all():
        Judgment.objects.create(item=item, annotator=alice, rating=-2, time_ms=4000)

    only_other = clients["charlie"].get("/api/annotators/", {"batch": other.pk}).json()["results"]
    assert only_other == [as_json(a) for a in annotator_quality([other])]
    assert [(row["username"], row["judgments"]) for row in only_other] == [("alice", 2)]
    both = clients["charlie"].get(f"/api/annotators/?batch={other.pk}&batch={judged.pk}").json()["results"]
    assert {row["username"]: row["judgments"] for row in both} == {"alice": 6, "bob": 4, "dave": 3}

    response = clients["charlie"].get("/api/annotators/", {"batch": 9999})
    assert response.status_code == 400 and "batch" in response.json()
    response = clients["charlie"].get("/api/annotators/", {"flagged": "perhaps"})
    assert response.status_code == 400 and "flagged" in response.json()


def test_one_annotators_figures_overall_per_batch_and_ratings(clients, judged, alice, charlie):
    other = make_batch("other", n_items=2)
    for item in other.items.all():
        Judgment.objects.create(item=item, annotator=alice, rating=-2, time_ms=4000)

    body = clients["charlie"].get(f"/api/annotators/{alice.pk}/quality/").json()
    overall = next(a for a in annotator_quality() if a.user_id == alice.pk)
    assert body["user_id"] == alice.pk and body["username"] == "alice"
    assert body["overall"] == as_json(overall) and body["overall"]["judgments"] == 6
    assert [(row["batch_name"], row["figures"]["judgments"]) for row in body["per_batch"]] == [
        ("judged", 4),
        ("other", 2),
    ]
    per_judged = next(a for a in annotator_quality(judged) if a.user_id == alice.pk)
    assert body["per_batch"][0]["figures"] == as_json(per_judged)
    assert {row["rating"]: row["count"] for row in body["ratings"]} == {-2: 3, -1: 1, 1: 1, 2: 1}
    assert body["ratings"][0]["label"]  # the lecture's wording

    nothing = clients["charlie"].get(f"/api/annotators/{charlie.pk}/quality/").json()
    assert nothing["overall"] is None and nothing["per_batch"] == []
    assert {row["count"] for row in nothing["ratings"]} == {0}
    assert clients["charlie"].get("/api/annotators/9999/quality/").status_code == 404
