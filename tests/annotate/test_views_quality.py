"""The quality dashboard: staff only, with agreement, alpha, gold accuracy, bias and flags."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import Batch, Item, Judgment

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged_batch(alice, bob):
    """Four items judged by alice and bob; bob misses every gold answer and is fast."""
    batch = Batch.objects.create(name="colours", overlap=2)
    for n in range(5):
        item = Item.objects.create(
            batch=batch, external_id=str(n), prompt=[{"role": "user", "content": f"Q{n}"}],
            response_1="a longer answer", response_2="short", gold=-2,
        )  # fmt: skip
        Judgment.objects.create(item=item, annotator=alice, rating=-2, time_ms=8000)
        Judgment.objects.create(item=item, annotator=bob, rating=1 if n else -1, time_ms=1500, swapped=True)
    return batch


def pages(batch, user) -> list[str]:
    return [
        reverse("quality:index"),
        reverse("quality:batch", args=[batch.pk]),
        reverse("quality:annotator", args=[user.pk]),
        reverse("quality:export"),
    ]


def test_anonymous_visitors_are_sent_to_login(client, judged_batch, alice):
    for url in pages(judged_batch, alice):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("login")), url


def test_annotators_are_refused(alice_client, judged_batch, alice):
    for url in pages(judged_batch, alice):
        assert alice_client.get(url).status_code == 403, url


def test_index_lists_batches_and_flagged_annotators(charlie_client, judged_batch, bob):
    response = charlie_client.get(reverse("quality:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert reverse("quality:batch", args=[judged_batch.pk]) in html
    summary = response.context["summaries"][0]
    assert (summary.items, summary.fully_judged, summary.pairs, summary.agreeing_pairs) == (5, 5, 5, 1)
    assert "gold accuracy 20% &lt; 60%" in html and "median 1.5 s per item &lt; 3 s" in html
    assert reverse("quality:annotator", args=[bob.pk]) in html


def test_batch_page_shows_figures_and_svg_charts(charlie_client, judged_batch):
    response = charlie_client.get(reverse("quality:batch", args=[judged_batch.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Quality of batch colours" in html
    assert "0.200 (1 of 5 pairs)" in html  # agreement on direction
    assert html.count("<svg") == 4 and 'class="bar warn"' in html
    bob_row = next(a for a in response.context["quality"].annotators if a.username == "bob")
    # bob saw the sides swapped and picked screen-first ("short" = response 2) on 4 of 5
    assert (bob_row.first_shown_share, bob_row.longer_share, bob_row.gold_accuracy) == (0.8, 0.2, 0.2)
    assert charlie_client.get(reverse("quality:batch", args=[999_999])).status_code == 404


def test_annotator_page(charlie_client, judged_batch, alice, bob):
    response = charlie_client.get(reverse("quality:annotator", args=[bob.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Annotator bob" in html and "Flagged: gold accuracy 20% &lt; 60%" in html
    assert [batch.name for batch, _ in response.context["per_batch"]] == ["colours"]
    assert "<svg" in html and "Ratings given" in html
    html = charlie_client.get(reverse("quality:annotator", args=[alice.pk])).content.decode()
    assert "Not flagged." in html


def test_imported_answers_are_shown_apart_from_annotators_judgments(charlie_client, alice):
    """A batch imported with known answers: the quality page says it has no annotators' judgments yet, and how many
    imported answers it holds (the ones the reward form counts)."""
    from annotate.importers import import_user

    batch = Batch.objects.create(name="hh-test")
    importer = import_user()
    for n in range(3):
        item = Item.objects.create(batch=batch, external_id=str(n), prompt=[{"role": "user", "content": f"Q{n}"}])
        Judgment.objects.create(item=item, annotator=importer, rating=-2, time_ms=0)

    html = charlie_client.get(reverse("quality:batch", args=[batch.pk])).content.decode()
    index = charlie_client.get(reverse("quality:index")).content.decode()

    assert '<th>Judgments by annotators</th><td class="num">0</td>' in html
    assert '<th>Imported answers</th><td class="num">3</td>' in html
    assert "The 3 imported answers came with the import file" in html
    assert "They are not annotators’ judgments" in html
    assert "No annotator has judged this batch yet (its 3 imported answers are not annotators’ judgments)." in html
    assert "No judgments in this batch yet" not in html
    assert '<td class="num">3</td>' in index and "Imported answers" in index

    # One annotator judgment beside them: both counts, in the singular.
    Judgment.objects.create(item=batch.items.first(), annotator=alice, rating=1, time_ms=5000)
    html = charlie_client.get(reverse("quality:batch", args=[batch.pk])).content.decode()
    assert '<th>Judgments by annotators</th><td class="num">1</td>' in html
    assert "together with the 1 judgment by annotators." in html
