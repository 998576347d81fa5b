"""Quality of ranking batches: Kendall's tau and Krippendorff's alpha between annotators, and position bias."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.importers import import_user
from annotate.models import Batch, Item, Judgment
from annotate.quality import annotator_quality, batch_quality
from annotate.services import assign_hit, rank_item
from rlhf.rankings import krippendorff_alpha_ranks
from tests.annotate.factories import make_ranking_batch

pytestmark = pytest.mark.django_db


def rank(item: Item, user, tiers: list[list[int]], shown: list[int], time_ms: int = 20_000) -> Judgment:
    return Judgment.objects.create(item=item, annotator=user, ranking=tiers, display_order=shown, time_ms=time_ms)


@pytest.fixture
def ranked(alice, bob):
    """Two items ranked by alice and bob: tau 2/3 on the first (one swapped pair of 6), -1 on the second."""
    batch = Batch.objects.create(name="ranked", kind=Batch.Kind.RANKING, overlap=2)
    first = Item.objects.create(
        batch=batch,
        external_id="1",
        prompt=[{"role": "user", "content": "q1"}],
        response_1="a",
        response_2="b",
        more_responses=["c", "d"],
    )
    second = Item.objects.create(
        batch=batch,
        external_id="2",
        prompt=[{"role": "user", "content": "q2"}],
        response_1="a",
        response_2="b",
        more_responses=["c"],
    )
    rank(first, alice, [[1], [2], [3], [4]], [1, 2, 3, 4])  # shown first (1) ranked first
    rank(first, bob, [[1], [2], [4], [3]], [2, 1, 3, 4])  # shown first (2) ranked second
    rank(second, alice, [[1], [2], [3]], [1, 3, 2])  # yes
    rank(second, bob, [[3], [2], [1]], [3, 1, 2])  # yes
    Judgment.objects.create(item=second, annotator=import_user(), ranking=[[2], [1], [3]])  # not counted
    return batch


def test_agreement_is_mean_kendall_tau_and_alpha_on_ranks(ranked):
    quality = batch_quality(ranked)
    r = quality.rankings
    assert (r.rankings, r.ranked_items, r.multiply_ranked, r.tau_pairs) == (4, 2, 2, 2)
    assert r.mean_tau == pytest.approx((2 / 3 - 1) / 2)
    expected_alpha = krippendorff_alpha_ranks(
        [[[[1], [2], [3], [4]], [[1], [2], [4], [3]]], [[[1], [2], [3]], [[3], [2], [1]]]]
    )
    assert r.alpha == pytest.approx(expected_alpha)
    assert (quality.judgments, quality.judged_items, quality.fully_judged, quality.imported_judgments) == (4, 2, 2, 1)
    assert quality.alpha is None and quality.annotators == []


def test_position_bias_against_one_over_k(ranked):
    bias = batch_quality(ranked).rankings.position_bias
    assert (bias.rankings, bias.first_shown_first) == (4, 3)
    assert bias.share == 0.75
    assert bias.expected_share == pytest.approx((1 / 4 + 1 / 4 + 1 / 3 + 1 / 3) / 4)
    assert 0 < bias.p_value <= 1


def test_per_annotator_figures(ranked):
    alice, bob = batch_quality(ranked).rankings.annotators
    assert (alice.username, alice.rankings, alice.median_seconds, alice.tau_pairs) == ("alice", 2, 20.0, 2)
    assert alice.mean_tau == pytest.approx((2 / 3 - 1) / 2)
    assert (alice.position_bias.first_shown_first, bob.position_bias.first_shown_first) == (2, 1)


def test_rankings_through_the_hit_record_what_was_shown_first(alice):
    batch = make_ranking_batch("hit", n_items=2, size=3, samples_per_hit=2)
    hit = assign_hit(alice)
    for slot in hit.ordered_slots():
        rank_item(hit, slot.position, [[1], [2], [3]], 1000)  # always the order shown: A best
    bias = batch_quality(batch).rankings.position_bias
    assert (bias.rankings, bias.first_shown_first, bias.share) == (2, 2, 1.0)


def test_pairwise_figures_skip_rankings_in_mixed_selections(ranked, alice):
    pairs = Batch.objects.create(name="pairs")
    item = Item.objects.create(
        batch=pairs, external_id="p", prompt=[{"role": "user", "content": "q"}], response_1="a", response_2="b"
    )
    Judgment.objects.create(item=item, annotator=alice, rating=2)
    [figures] = [a for a in annotator_quality() if a.username == "alice"]
    assert figures.judgments == 1
    assert batch_quality(pairs).judgments == 1


def test_the_batch_page_explains_the_ranking_figures(charlie_client, ranked):
    html = charlie_client.get(reverse("quality:batch", args=[ranked.pk])).content.decode()
    assert "Mean Kendall’s τ between annotators" in html and "-0.167 (2 pairs of rankings)" in html
    assert "Krippendorff’s α (interval, on ranks)" in html
    assert "75% of 4 rankings (chance: 29%" in html
    assert "Agreement on direction" not in html
    assert "1 imported answer came with the import file" in html
    index = charlie_client.get(reverse("quality:index")).content.decode()
    assert "τ -0.167" in index


def test_a_ranking_batch_without_rankings_says_so(charlie_client):
    batch = make_ranking_batch("empty", n_items=1, size=3)
    html = charlie_client.get(reverse("quality:batch", args=[batch.pk])).content.decode()
    assert "No annotator has ranked this batch yet." in html
    assert "– (no item ranked twice)" in html


def test_the_api_reports_ranking_quality(charlie_client, ranked):
    body = charlie_client.get(f"/api/batches/{ranked.pk}/quality/").json()
    assert body["rankings"]["mean_tau"] == pytest.approx(-1 / 6)
    assert body["rankings"]["position_bias"]["first_shown_first"] == 3
    assert [a["username"] for a in body["rankings"]["annotators"]] == ["alice", "bob"]
    assert body["alpha"] is None


def test_the_annotator_page_and_api_show_ranking_figures(charlie_client, ranked, alice):
    html = charlie_client.get(reverse("quality:annotator", args=[alice.pk])).content.decode()
    assert "<h2>Rankings</h2>" in html and "has no judgments yet" not in html
    assert "-0.167 (2)" in html
    body = charlie_client.get(f"/api/annotators/{alice.pk}/quality/").json()
    [row] = body["rankings"]
    assert row["batch_name"] == "ranked" and row["figures"]["rankings"] == 2
    assert body["overall"] is None and body["per_batch"] == []


def test_annotators_who_only_ranked_are_listed_on_the_quality_page(charlie_client, ranked, alice):
    pairs = Batch.objects.create(name="pairs")
    item = Item.objects.create(
        batch=pairs, external_id="p", prompt=[{"role": "user", "content": "q"}], response_1="a", response_2="b"
    )
    Judgment.objects.create(item=item, annotator=alice, rating=2)
    figures = {a.username: (a.judgments, a.rankings) for a in annotator_quality()}
    assert figures == {"alice": (1, 2), "bob": (0, 2)}, "bob only ranked; the import user is never listed"
    html = charlie_client.get(reverse("quality:index")).content.decode()
    annotators = html[html.index("Annotators (all batches)") :]
    assert ">bob</a>" in annotators and "<th>Rankings</th>" in annotators
