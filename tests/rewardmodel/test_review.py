"""The disagreement review queue: staff-only, sorted by the model's confidence, and marking a judgment wrong takes
it out of exports and training pairs until it is unmarked."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.export import export_preferences
from annotate.models import Batch, Item, Judgment, Rating
from annotate.review import confirm, mark_wrong, unmark_wrong
from policy.data import batch_demonstrations
from rewardmodel.models import ItemScore, RewardModelRun
from rewardmodel.review import model_disagreements, score_judged
from rewardmodel.services import preference_pairs
from runs.models import RunStatus


@pytest.fixture
def world(alice, bob):
    """Three items; the run's gap r2 - r1 is +2, -1 and +0.5. alice chose response 1 everywhere, bob response 2 on c."""
    batch = Batch.objects.create(name="review", overlap=2)
    items = {
        name: Item.objects.create(
            batch=batch,
            external_id=name,
            prompt=[{"role": "user", "content": f"Question {name}?"}],
            response_1=f"first {name}",
            response_2=f"second {name}",
        )
        for name in "abc"
    }
    for item in items.values():
        Judgment.objects.create(item=item, annotator=alice, rating=Rating.RESPONSE_1_BETTER)
    Judgment.objects.create(item=items["c"], annotator=bob, rating=Rating.RESPONSE_2_SLIGHTLY)
    run = RewardModelRun.objects.create(status=RunStatus.SUCCEEDED, finished_at=timezone.now(), artifact_path="m")
    run.batches.set([batch])
    for name, gap in {"a": 2.0, "b": -1.0, "c": 0.5}.items():
        ItemScore.objects.create(run=run, item=items[name], rewards=[0.0, gap], gap_2_minus_1=gap, uncertainty=abs(gap))
    return {"batch": batch, "items": items, "run": run}


def curator_with_export(user):
    user.user_permissions.add(Permission.objects.get(codename="export_judgments"))
    return type(user).objects.get(pk=user.pk)  # a fresh object: permissions are cached per instance


def exported_items() -> list[str]:
    out = io.BytesIO()
    export_preferences(out, "raw")
    return sorted(json.loads(line)["item_id"] for line in out.getvalue().decode().splitlines())


def test_judgments_the_model_disagrees_with_most_confident_first(world, alice, bob):
    rows = list(model_disagreements(world["run"], [world["batch"].pk]))
    assert [(j.item.external_id, j.annotator.username, j.margin) for j in rows] == [
        ("a", "alice", 2.0),
        ("c", "alice", 0.5),
    ]
    assert [j.item.external_id for j in model_disagreements(world["run"], [world["batch"].pk], min_margin=1.0)] == ["a"]


def test_a_marked_wrong_judgment_leaves_exports_and_training_and_comes_back(world, alice, charlie):
    batch = world["batch"]
    wrong = Judgment.objects.get(item=world["items"]["a"], annotator=alice)
    assert len(preference_pairs([batch])) == 4 and exported_items() == ["a", "b", "c", "c"]
    updated_at = wrong.updated_at
    wrong = mark_wrong(wrong, charlie, "the model is right: 2 is better")
    assert (wrong.excluded_by, wrong.exclusion_note) == (charlie, "the model is right: 2 is better")
    assert wrong.updated_at == updated_at, "the annotator's last change stays as it was"
    assert exported_items() == ["b", "c", "c"]
    pairs = preference_pairs([batch])
    assert len(pairs) == 3 and all(pair.prompt[-1]["content"] != "Question a?" for pair in pairs)
    assert len(batch_demonstrations(batch)) == 3, "nor is it an SFT demonstration"
    unmark_wrong(wrong)
    assert exported_items() == ["a", "b", "c", "c"] and len(preference_pairs([batch])) == 4
    assert len(batch_demonstrations(batch)) == 4


def test_confirming_records_who_and_takes_back_a_wrong_mark(world, alice, charlie):
    judgment = mark_wrong(Judgment.objects.get(item=world["items"]["b"], annotator=alice), charlie)
    judgment = confirm(judgment, charlie)
    assert judgment.excluded_at is None and judgment.confirmed_by == charlie and judgment.confirmed_at is not None
    assert "b" in exported_items()


def test_the_review_page_is_staff_only(world, alice, bare_staff, researcher, curator):
    assert Client().get("/dashboard/review/")["Location"].startswith("/accounts/login/")
    for user, status in ((alice, 403), (bare_staff, 403), (researcher, 403), (curator, 200)):
        client = Client()
        client.force_login(user)
        assert client.get("/dashboard/review/").status_code == status, user
    client = Client()
    client.force_login(alice)
    judgment = Judgment.objects.get(item=world["items"]["a"], annotator=alice)
    assert client.post(f"/dashboard/review/judgment/{judgment.pk}/wrong/").status_code == 403
    judgment.refresh_from_db()
    assert judgment.excluded_at is None, "an annotator cannot take their own judgment out"


def test_staff_mark_a_judgment_wrong_on_the_page_and_unmark_it(world, alice, curator):
    client = Client()
    client.force_login(curator)
    page = client.get(f"/dashboard/review/?run={world['run'].pk}").content.decode()
    model_table = page[page.index('id="model-disagreements"') : page.index('id="annotator-disagreements"')]
    assert model_table.index("Question a?") < model_table.index("Question c?"), "most confident first"
    assert "2.000" in model_table and "Question b?" not in model_table
    annotators_table = page[page.index('id="annotator-disagreements"') :]
    assert "Question c?" in annotators_table and "Question a?" not in annotators_table
    judgment = Judgment.objects.get(item=world["items"]["a"], annotator=alice)
    response = client.post(
        f"/dashboard/review/judgment/{judgment.pk}/wrong/",
        {"note": "typo click", "run": world["run"].pk},
        HTTP_HX_REQUEST="true",
    )
    fragment = response.content.decode()
    assert response.status_code == 200 and "Marked wrong by curator" in fragment and "typo click" in fragment
    assert exported_items() == ["b", "c", "c"]
    api = APIClient()
    api.force_authenticate(curator_with_export(curator))
    exported = api.get("/api/exports/preferences/", {"fmt": "raw", "batch": "review"})
    assert sorted(json.loads(line)["item_id"] for line in b"".join(exported.streaming_content).splitlines()) == [
        "b",
        "c",
        "c",
    ], "the export API leaves it out too"
    response = client.post(f"/dashboard/review/judgment/{judgment.pk}/unwrong/", {"run": world["run"].pk})
    assert response.status_code == 302
    assert exported_items() == ["a", "b", "c", "c"]


def test_judged_items_are_scored_on_demand_up_to_a_cap(world):
    batch = world["batch"]
    run = RewardModelRun.objects.create(status=RunStatus.SUCCEEDED, finished_at=timezone.now(), artifact_path="m")
    run.batches.set([batch])

    class Lengths:
        def score_batch(self, prompts, responses, batch_size=32):
            return [float(len(r)) for r in responses]

    assert score_judged(run, [batch.pk], limit=2, scorer=Lengths()) == 2
    assert score_judged(run, [batch.pk], limit=2, scorer=Lengths()) == 1
    assert ItemScore.objects.filter(run=run).count() == 3
    # "first a" (7) vs "second a" (8): the model prefers response 2, alice chose 1
    assert [j.margin for j in model_disagreements(run, [batch.pk])] == [1.0, 1.0, 1.0]


def test_ranking_judgments_are_listed_by_the_pair_the_model_disputes_most(alice, bob, curator):
    from rewardmodel.review import disagreement_rows, most_disputed_pair
    from tests.annotate.factories import make_ranking_batch

    batch = make_ranking_batch("ranked", n_items=2, size=3)
    first, second = batch.items.order_by("pk")
    run = RewardModelRun.objects.create(status=RunStatus.SUCCEEDED, finished_at=timezone.now(), artifact_path="m")
    run.batches.set([batch])
    ItemScore.objects.create(run=run, item=first, rewards=[0.0, 1.0, 3.0], gap_2_minus_1=1.0, uncertainty=1.0)
    ItemScore.objects.create(run=run, item=second, rewards=[2.0, 1.0, 0.0], gap_2_minus_1=-1.0, uncertainty=1.0)
    Judgment.objects.create(item=first, annotator=alice, ranking=[[1], [2], [3]])  # the model: 3 > 2 > 1
    Judgment.objects.create(item=second, annotator=alice, ranking=[[1], [2], [3]])  # the model agrees
    assert most_disputed_pair([[1], [2], [3]], [0.0, 1.0, 3.0]) == (3.0, (1, 3))
    rows = disagreement_rows(run, [batch.pk])
    assert [(row.item_id, row.margin, row.disputed) for row in rows] == [(first.pk, 3.0, (1, 3))]
    client = Client()
    client.force_login(curator)
    page = client.get(f"/dashboard/review/?run={run.pk}").content.decode()
    assert 'Ranked <span class="ranking-order">A &gt; C</span>' in page and "3.000" in page
    # The whole ranking in the letters the responses are listed with, not its JSON.
    assert 'ranked <span class="ranking-order">A &gt; B &gt; C</span>' in page and "[[1]" not in page
