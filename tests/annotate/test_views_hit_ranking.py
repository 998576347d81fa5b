"""The ranking HIT page: K responses as A, B, C, D in the slot's shuffled order, orders saved as they are typed."""

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.models import Hit, HitSlot, Item, Judgment
from annotate.services import assign_hit
from tests.annotate.factories import make_ranking_batch

# A fixed shuffle per sample, so the tests know which item response each letter shows.
DISPLAY_ORDER = [3, 1, 4, 2]  # A = response 3, B = response 1, C = response 4, D = response 2


@pytest.fixture
def hit(alice) -> Hit:
    make_ranking_batch("rank", n_items=8, size=4, samples_per_hit=4, guidelines="Rank by **helpfulness**.")
    hit = assign_hit(alice)
    hit.slots.update(display_order=DISPLAY_ORDER)
    return hit


def hit_url(hit: Hit, sample: int | None = None) -> str:
    url = reverse("hit", args=[hit.pk])
    return url if sample is None else f"{url}?sample={sample}"


def rank(client, hit: Hit, position, ranking, htmx: bool = True, **extra):
    headers = {"HX-Request": "true"} if htmx else {}
    body = ranking if isinstance(ranking, str) else json.dumps(ranking)
    data = {"position": position, "ranking": body, "elapsed_ms": 1200, **extra}
    return client.post(reverse("hit_rank", args=[hit.pk]), data, headers=headers)


def slot_at(hit: Hit, position: int) -> HitSlot:
    return hit.slots.select_related("item").get(position=position)


def badges(html: str) -> dict[str, str]:
    """Letter -> the place badge shown on that response."""
    heading = r'id="response-([A-I])"[^>]*>\s*<h2[^>]*>\s*<span[^>]*>[^<]*</span>\s*'
    return dict(re.findall(heading + r'<span class="place-badge"[^>]*>([^<]+)<', html))


def order_text(html: str) -> str:
    return re.search(r'<strong id="order-text">([^<]*)</strong>', html).group(1)


def test_page_shows_the_k_responses_as_letters_in_the_slots_order(alice_client, hit):
    html = alice_client.get(hit_url(hit)).content.decode()
    item = slot_at(hit, 1).item
    assert "Rank the AI responses, best first" in html
    assert "Your annotation progress for this HIT: 0/4 completed." in html
    assert "Sample 1 of 4." in html and "→ Next sample" in html and "Go to next un-marked sample" in html
    assert "<summary>Annotation Guidelines</summary>" in html and "<strong>helpfulness</strong>" in html
    assert item.instruction in html
    headings = re.findall(r'<span class="response-name">Response ([A-I])</span>', html)
    assert headings == ["A", "B", "C", "D"]
    shown = [html.index(item.response(number)) for number in DISPLAY_ORDER]
    assert shown == sorted(shown), "A shows response 3, B response 1, C response 4, D response 2"
    assert "AI Response 1" not in html and 'name="rating"' not in html, "no pairwise scale on a ranking sample"
    assert "vendor/sortablejs-1.15.7.min.js" in html
    assert order_text(html) == "nothing yet" and badges(html) == {}
    assert "<kbd>A</kbd>–<kbd>D</kbd>" in html and "<kbd>Esc</kbd> clear" in html


def test_markdown_in_ranking_responses_renders_and_html_is_neutralised(alice_client, hit):
    item = slot_at(hit, 1).item
    item.more_responses = ["**bold** and `code`", "<script>alert(1)</script>"]
    item.save()
    html = alice_client.get(hit_url(hit)).content.decode()
    assert "<strong>bold</strong> and <code>code</code>" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_partial_order_is_a_draft_that_survives_a_reload(alice_client, hit):
    response = rank(alice_client, hit, 1, [[2], [1]])  # B, then A
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="progress" class="progress" hx-swap-oob="true"' in html
    assert "Your annotation progress for this HIT: 0/4 completed." in html, "a partial order does not mark"
    assert order_text(html) == "B A" and badges(html) == {"A": "2nd", "B": "1st"}
    assert "Draft saved" in html
    assert not Judgment.objects.exists()
    page = alice_client.get(hit_url(hit, 1)).content.decode()
    assert order_text(page) == "B A" and badges(page) == {"A": "2nd", "B": "1st"}
    assert 'data-tiers="[[2], [1]]"' in page and 'data-complete="0"' in page


def test_a_complete_order_is_saved_in_the_item_orientation(alice_client, hit):
    html = rank(alice_client, hit, 1, [[2], [1], [4]]).content.decode()  # B A D, C left over is last
    judgment = Judgment.objects.get()
    # B shows response 1, A response 3, D response 2, C response 4.
    assert judgment.ranking == [[1], [3], [2], [4]]
    assert judgment.display_order == DISPLAY_ORDER and judgment.time_ms == 1200
    assert judgment.item == slot_at(hit, 1).item and judgment.hit == hit
    assert "1/4 completed." in html
    assert order_text(html) == "B A D C" and badges(html) == {"A": "2nd", "B": "1st", "C": "4th", "D": "3rd"}
    assert "Saved, complete." in html
    page = alice_client.get(hit_url(hit, 1)).content.decode()
    assert order_text(page) == "B A D C" and 'data-complete="1"' in page
    assert re.search(r'class="dot marked current"', page), "the sample is marked"


def test_typing_anew_over_a_saved_order_keeps_it_until_complete(alice_client, hit):
    rank(alice_client, hit, 1, [[2], [1], [4]])
    html = rank(alice_client, hit, 1, [[3]]).content.decode()
    assert order_text(html) == "C" and "your complete order B A D C stays" in html
    assert "1/4 completed." in html
    assert Judgment.objects.get().ranking == [[1], [3], [2], [4]]
    rank(alice_client, hit, 1, [[3], [4], [1]])
    assert Judgment.objects.get().ranking == [[4], [2], [3], [1]]
    assert Judgment.objects.count() == 1 and slot_at(hit, 1).draft_ranking is None


def test_without_htmx_a_saved_order_redirects_back_to_the_sample(alice_client, hit):
    response = rank(alice_client, hit, 3, [[1], [2], [3], [4]], htmx=False)
    assert response.status_code == 302 and response["Location"] == hit_url(hit, 3)
    assert Judgment.objects.get().ranking == [[3], [1], [4], [2]]


@pytest.mark.parametrize(
    ("position", "ranking", "reason"),
    [
        (1, "B A D", "ranking must be the order as JSON places"),
        (1, "", "ranking must be the order as JSON places"),
        (1, "[" * 100_000, "ranking must be the order as JSON places"),
        (1, [[1], [1]], "a response appears twice"),
        (1, [[5]], "response number 5 is not between 1 and 4"),
        (1, [[1, 2], [3]], "ties are not allowed in this batch"),
        (1, [["A"]], "response number &#x27;A&#x27; is not between 1 and 4"),
        (1, {"order": [1]}, "A ranking is a list of places"),
        (9, [[1]], "This HIT has no sample 9."),
        ("x", [[1]], "position must be a sample number"),
    ],
)
def test_bad_input_is_refused_with_a_clear_reason_and_nothing_saved(alice_client, hit, position, ranking, reason):
    rank(alice_client, hit, 2, [[4]])  # a draft on another sample, which must stay as it is
    response = rank(alice_client, hit, position, ranking)
    assert response.status_code == 400
    assert response["HX-Retarget"] == "#ranking-error" and response["HX-Reswap"] == "outerHTML"
    html = response.content.decode()
    assert html.startswith('<p id="ranking-error"') and reason in html
    assert not Judgment.objects.exists()
    assert slot_at(hit, 1).draft_ranking is None and slot_at(hit, 2).draft_ranking == [[4]]


def test_bad_input_without_htmx_shows_the_page_with_the_reason(alice_client, hit):
    response = rank(alice_client, hit, 1, [[7]], htmx=False)
    assert response.status_code == 400
    html = response.content.decode()
    assert "response number 7 is not between 1 and 4" in html and "Sample 1 of 4." in html
    assert not Judgment.objects.exists()


def test_ties_where_the_batch_allows_them(alice_client, alice):
    make_ranking_batch("ties", n_items=2, size=3, samples_per_hit=2, allow_ties=True)
    hit = assign_hit(alice)
    hit.slots.update(display_order=[2, 3, 1])
    html = alice_client.get(hit_url(hit)).content.decode()
    assert "<kbd>=</kbd> then a letter: tie with the previous place" in html
    html = rank(alice_client, hit, 1, [[1, 3], [2]]).content.decode()  # A and C tie first, B last
    assert order_text(html) == "(A=C) B" and badges(html) == {"A": "1st (tie)", "B": "3rd", "C": "1st (tie)"}
    assert Judgment.objects.get().ranking == [[2, 1], [3]]


def test_a_pairwise_sample_cannot_be_ranked_and_keeps_its_page(alice_client, alice):
    from tests.annotate.factories import make_batch

    make_batch("pairs", n_items=6)
    hit = assign_hit(alice)
    html = alice_client.get(hit_url(hit)).content.decode()
    assert "Compare two AI responses" in html and "sortablejs" not in html and 'data-kind="ranking"' not in html
    response = rank(alice_client, hit, 1, [[1], [2]])
    assert response.status_code == 400 and "is a pairwise comparison" in response.content.decode()


def test_submit_once_every_order_is_complete(alice_client, hit):
    for position in range(1, 5):
        rank(alice_client, hit, position, [[4], [3], [2]])
    response = alice_client.post(reverse("hit_submit", args=[hit.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("hit_done", args=[hit.pk])
    assert Judgment.objects.filter(hit=hit).count() == 4
    assert all(j.ranking == [[2], [4], [1], [3]] for j in Judgment.objects.all())


def test_ranking_a_sample_given_back_tells_the_annotator(alice_client, bob, hit, settings):
    settings.HIT_TIMEOUT_MINUTES = 30
    Item.objects.exclude(pk__in=hit.slots.values("item_id")).delete()
    Hit.objects.filter(pk=hit.pk).update(last_activity_at=timezone.now() - timedelta(minutes=31))
    assert len(assign_hit(bob).ordered_slots()) == 4, "alice's idle HIT gave its items to bob"
    response = rank(alice_client, hit, 2, [[1], [2], [3]])
    assert response.status_code == 409 and response["HX-Retarget"] == "#ranking-error"
    assert "Sample 2 was given back" in response.content.decode()
    assert not Judgment.objects.exists() and slot_at(hit, 2).draft_ranking is None
    html = alice_client.get(hit_url(hit, 2)).content.decode()
    assert "This sample was given back" in html and "It needs no ranking from you" in html
    assert not re.search(r'<button type="submit" id="submit-hit"[^>]* disabled', html), "nothing left to rank"
