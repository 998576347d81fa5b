"""The HIT page as an annotator uses it: progress, navigation, rating through htmx, submit."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.models import Batch, Hit, HitSlot, Item, Judgment, Rating
from annotate.services import assign_hit
from tests.annotate import factories

RATING_LABELS = [label for _, label in Rating.choices]


def make_batch(name: str = "b", n_items: int = 12, **fields) -> Batch:
    return factories.make_batch(name, n_items, guidelines="Prefer the **more helpful** answer.", **fields)


@pytest.fixture
def hit(alice) -> Hit:
    make_batch()
    hit = assign_hit(alice)
    hit.slots.update(swapped=False)
    return hit


def hit_url(hit: Hit, sample: int | None = None) -> str:
    url = reverse("hit", args=[hit.pk])
    return url if sample is None else f"{url}?sample={sample}"


def rate(client, hit: Hit, position: int | str, screen_rating: int | str, htmx: bool = True, **extra):
    headers = {"HX-Request": "true"} if htmx else {}
    data = {"position": position, "rating": screen_rating, "elapsed_ms": 1500, **extra}
    return client.post(reverse("hit_rate", args=[hit.pk]), data, headers=headers)


def slot_at(hit: Hit, position: int) -> HitSlot:
    return hit.slots.select_related("item").get(position=position)


def checked_label(html: str) -> str | None:
    """The label text of the checked rating option on the page."""
    match = re.search(
        r'<input type="radio" name="rating" value="-?\d" data-key="\d" checked>\s*<kbd>\d</kbd>\s*'
        r'<span class="option-label">([^<]*)</span>',
        html,
    )
    return match.group(1).replace("&#x27;", "'") if match else None


def test_page_shows_progress_sample_and_the_lecture_wording(alice_client, hit):
    html = alice_client.get(hit_url(hit)).content.decode()
    assert "Your annotation progress for this HIT: 0/6 completed." in html
    assert "Sample 1 of 6." in html
    assert "→ Next sample" in html and "Go to next un-marked sample" in html
    assert "<summary>Annotation Guidelines</summary>" in html
    assert "<strong>more helpful</strong>" in html, "guidelines render as markdown"
    for heading in ("Instruction", "AI Response 1", "AI Response 2", "Rating"):
        assert f"<h2>{heading}</h2>" in html
    for label in RATING_LABELS:
        assert label.replace("'", "&#x27;") in html
    assert "Hi alice. Not alice?" in html
    assert slot_at(hit, 1).item.instruction in html


def test_sample_parameter_moves_between_samples(alice_client, hit):
    html = alice_client.get(hit_url(hit, 3)).content.decode()
    assert "Sample 3 of 6." in html
    assert slot_at(hit, 3).item.instruction in html
    assert slot_at(hit, 1).item.instruction not in html
    assert alice_client.get(hit_url(hit, 7)).status_code == 404
    assert alice_client.get(hit_url(hit) + "?sample=abc").status_code == 404


def test_htmx_navigation_returns_only_the_sample(alice_client, hit):
    response = alice_client.get(hit_url(hit, 2), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "Sample 2 of 6." in html
    assert "<html" not in html and "Your annotation progress" not in html
    assert response["Vary"] and "HX-Request" in response["Vary"]
    # Going back in history asks for the whole page again.
    full = alice_client.get(hit_url(hit, 2), headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in full.content.decode()


def test_rating_via_htmx_saves_and_returns_sample_with_progress(alice_client, hit):
    response = rate(alice_client, hit, 1, Rating.RESPONSE_1_SLIGHTLY)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="progress" class="progress" hx-swap-oob="true"' in html
    assert "Your annotation progress for this HIT: 1/6 completed." in html
    assert "Sample 1 of 6." in html
    assert checked_label(html) == Rating.RESPONSE_1_SLIGHTLY.label
    judgment = Judgment.objects.get(annotator__username="alice")
    assert (judgment.rating, judgment.item, judgment.hit, judgment.time_ms) == (-1, slot_at(hit, 1).item, hit, 1500)
    # A reload shows the saved answer and progress.
    page = alice_client.get(hit_url(hit, 1)).content.decode()
    assert "1/6 completed." in page
    assert checked_label(page) == Rating.RESPONSE_1_SLIGHTLY.label


def test_rating_without_htmx_redirects_back_to_the_sample(alice_client, hit):
    response = rate(alice_client, hit, 4, Rating.RESPONSE_2_BETTER, htmx=False)
    assert response.status_code == 302 and response["Location"] == hit_url(hit, 4)
    assert Judgment.objects.get().rating == Rating.RESPONSE_2_BETTER


def test_swapped_sides_are_shown_swapped_and_stored_unswapped(alice_client, hit):
    hit.slots.filter(position=2).update(swapped=True)
    item = slot_at(hit, 2).item
    html = alice_client.get(hit_url(hit, 2)).content.decode()
    assert html.index(item.response_2) < html.index(item.response_1), "item's response 2 is on screen as AI Response 1"
    # The annotator says the response on screen as "AI Response 1" is clearly better...
    html = rate(alice_client, hit, 2, Rating.RESPONSE_1_BETTER).content.decode()
    judgment = Judgment.objects.get(item=item)
    # ...which is the item's response 2.
    assert judgment.rating == Rating.RESPONSE_2_BETTER and judgment.swapped is True
    assert judgment.chosen_text == item.response_2
    assert checked_label(html) == Rating.RESPONSE_1_BETTER.label, "the page shows the answer as it was clicked"


def test_changing_an_answer_keeps_one_judgment(alice_client, hit):
    rate(alice_client, hit, 1, Rating.RESPONSE_1_BETTER)
    html = rate(alice_client, hit, 1, Rating.RESPONSE_2_SLIGHTLY).content.decode()
    judgment = Judgment.objects.get()
    assert judgment.rating == Rating.RESPONSE_2_SLIGHTLY
    assert judgment.time_ms == 3000, "time adds up over both clicks"
    assert "1/6 completed." in html


def test_time_on_a_rated_sample_adds_up_when_leaving_it(alice_client, hit):
    rate(alice_client, hit, 1, Rating.RESPONSE_1_BETTER)
    url = reverse("hit_time", args=[hit.pk])
    assert alice_client.post(url, {"position": 1, "elapsed_ms": 700}).status_code == 204
    assert Judgment.objects.get().time_ms == 2200
    assert alice_client.post(url, {"position": 1}).status_code == 400


def test_bad_rating_input_is_refused_with_a_reason(alice_client, hit):
    response = rate(alice_client, hit, 1, "better")
    assert response.status_code == 400 and b"rating" in response.content
    response = rate(alice_client, hit, 1, 3, htmx=False)
    assert response.status_code == 400
    html = response.content.decode()
    assert "rating must be one of -2, -1, 1, 2." in html and "Sample 1 of 6." in html, "the page, with the reason"
    assert not Judgment.objects.exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("rating", "3"),
        ("rating", "0"),
        ("rating", "\u0662"),  # Arabic-Indic digit two
        ("rating", " 2"),
        ("rating", "+2"),
        ("rating", "02"),
        ("rating", "2.0"),
        ("position", "7"),
        ("position", "0"),
        ("position", "\u0663"),  # Arabic-Indic digit three
        ("position", "03"),
        ("position", "3 "),
        ("position", "-1"),
    ],
)
def test_htmx_rating_refuses_what_is_not_a_plain_number_in_range_with_400(alice_client, hit, field, value):
    """400 with the reason, swapped under the rating buttons (not 200 and a redirect, not int()'s leniency)."""
    data = {"position": 3, "rating": Rating.RESPONSE_2_BETTER, field: value}
    response = rate(alice_client, hit, data["position"], data["rating"])
    assert response.status_code == 400
    assert response["HX-Retarget"] == "#rating-error" and response["HX-Reswap"] == "outerHTML"
    html = response.content.decode()
    assert html.startswith('<p id="rating-error"') and ("sample" if field == "position" else "rating") in html
    assert not Judgment.objects.exists()


def test_the_page_lets_htmx_show_a_refused_rating(alice_client, hit):
    html = alice_client.get(hit_url(hit)).content.decode()
    assert '<p id="rating-error" class="error rating-error" role="alert" hidden></p>' in html
    assert '{"code": "40[09]", "swap": true, "error": true}' in html, "htmx swaps 400/409 answers in"


def test_time_is_bookkeeping_and_never_stops_a_rating(alice_client, hit):
    response = rate(alice_client, hit, 1, Rating.RESPONSE_2_BETTER, elapsed_ms="9" * 30)
    assert response.status_code == 200
    assert Judgment.objects.get().time_ms == 0, "a number no page could have measured counts as no time"


def test_submit_refused_until_every_sample_is_marked(alice_client, hit):
    for position in range(1, 6):
        rate(alice_client, hit, position, Rating.RESPONSE_1_BETTER)
    html = alice_client.get(hit_url(hit)).content.decode()
    assert "5/6 completed." in html
    assert "Sample 6 of 6." in html, "the page opens on the first un-marked sample"
    assert re.search(r'<button type="submit" id="submit-hit"[^>]* disabled', html)
    response = alice_client.post(reverse("hit_submit", args=[hit.pk]), follow=True)
    hit.refresh_from_db()
    assert hit.submitted_at is None
    assert "1 sample still needs a rating" in response.content.decode()


def test_submit_leads_to_thank_you_and_the_next_hit(alice_client, hit):
    for position in range(1, 7):
        html = rate(alice_client, hit, position, Rating.RESPONSE_2_BETTER).content.decode()
    assert "6/6 completed." in html
    assert not re.search(r'<button type="submit" id="submit-hit"[^>]* disabled', html), "submit is enabled"
    response = alice_client.post(reverse("hit_submit", args=[hit.pk]), follow=True)
    html = response.content.decode()
    assert "<h1>Thank You!</h1>" in html
    hit.refresh_from_db()
    assert hit.is_submitted
    next_url = reverse("next_hit")
    assert f'<form method="post" action="{next_url}"' in html and "Start the next HIT" in html
    response = alice_client.post(next_url)
    new_hit = Hit.objects.exclude(pk=hit.pk).get(annotator__username="alice")
    assert response["Location"] == hit_url(new_hit)
    assert set(new_hit.slots.values_list("item_id", flat=True)).isdisjoint(hit.slots.values_list("item_id", flat=True))


def test_the_rating_sends_the_next_unmarked_sample_along_and_the_submit_brings_the_time(alice_client, hit, settings):
    html = rate(alice_client, hit, 1, Rating.RESPONSE_2_BETTER).content.decode()
    prefetched = re.search(
        r'<template id="prefetched-sample" data-position="2" hx-swap-oob="true">(.*?)</template>', html, re.S
    )
    assert prefetched, "the next un-marked sample comes with the rating"
    assert 'data-position="2"' in prefetched.group(1) and slot_at(hit, 2).item.instruction in prefetched.group(1)
    rate(alice_client, hit, 3, Rating.RESPONSE_1_BETTER)
    html = rate(alice_client, hit, 2, Rating.RESPONSE_1_BETTER).content.decode()
    assert 'id="prefetched-sample" data-position="4"' in html, "the first un-marked one, past those rated"
    for position in range(4, 7):
        html = rate(alice_client, hit, position, Rating.RESPONSE_1_BETTER).content.decode()
    assert '<template id="prefetched-sample" hx-swap-oob="true"></template>' in html, "nothing left to send"
    before = dict(Judgment.objects.filter(hit=hit).values_list("item_id", "time_ms"))
    times = {"elapsed_ms_1": "700", "elapsed_ms_2": "x", "elapsed_ms_6": "999999999"}
    alice_client.post(reverse("hit_submit", args=[hit.pk]), times)
    after = dict(Judgment.objects.filter(hit=hit).values_list("item_id", "time_ms"))
    first, second, last = slot_at(hit, 1).item_id, slot_at(hit, 2).item_id, slot_at(hit, 6).item_id
    assert after[first] == before[first] + 700
    assert after[second] == before[second], "a malformed time counts as none"
    assert after[last] == settings.MAX_ITEM_SECONDS * 1000, "capped like any reported time"
    hit.refresh_from_db()
    assert hit.is_submitted


def test_a_submitted_hit_can_no_longer_change(alice_client, hit):
    for position in range(1, 7):
        rate(alice_client, hit, position, Rating.RESPONSE_2_BETTER)
    alice_client.post(reverse("hit_submit", args=[hit.pk]))
    response = rate(alice_client, hit, 1, Rating.RESPONSE_1_BETTER)
    assert response.status_code == 200 and response["HX-Redirect"] == hit_url(hit)
    assert Judgment.objects.get(item=slot_at(hit, 1).item).rating == Rating.RESPONSE_2_BETTER
    assert alice_client.get(hit_url(hit))["Location"] == reverse("hit_done", args=[hit.pk])


def test_thank_you_page_needs_a_submitted_hit(alice_client, hit):
    assert alice_client.get(reverse("hit_done", args=[hit.pk]))["Location"] == hit_url(hit)


def test_another_annotators_hit_is_not_found(client, bob, hit):
    client.force_login(bob)
    assert client.get(hit_url(hit)).status_code == 404
    assert client.get(reverse("hit_done", args=[hit.pk])).status_code == 404
    assert rate(client, hit, 1, Rating.RESPONSE_1_BETTER).status_code == 404
    assert client.post(reverse("hit_submit", args=[hit.pk])).status_code == 404
    assert client.post(reverse("hit_time", args=[hit.pk]), {"position": 1, "elapsed_ms": 5}).status_code == 404
    assert not Judgment.objects.exists()


def test_login_required(client, hit):
    for url in (hit_url(hit), reverse("hit_done", args=[hit.pk]), reverse("next_hit")):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    response = rate(client, hit, 1, Rating.RESPONSE_1_BETTER, htmx=False)
    assert response["Location"].startswith(reverse("login"))
    assert not Judgment.objects.exists()


def test_html_in_responses_is_neutralised(alice_client, hit):
    Item.objects.filter(pk=slot_at(hit, 1).item_id).update(
        response_1='Here: <script>alert("pwned")</script> <img src=x onerror=alert(1)> and <b>bold</b>'
    )
    html = alice_client.get(hit_url(hit, 1)).content.decode()
    assert '<script>alert("pwned")' not in html and "<img src=x" not in html and "<b>bold" not in html
    assert '&lt;script&gt;alert("pwned")&lt;/script&gt;' in html, "shown as text"


def test_markdown_in_responses_renders(alice_client, hit):
    Item.objects.filter(pk=slot_at(hit, 1).item_id).update(
        response_2="Steps:\n\n- one\n- two\n\n```\nprint(1 < 2)\n```"
    )
    html = alice_client.get(hit_url(hit, 1)).content.decode()
    assert "<li>one</li>" in html and "<pre><code>print(1 &lt; 2)\n</code></pre>" in html


def test_input_section_only_when_the_item_has_an_input(alice_client, hit):
    html = alice_client.get(hit_url(hit, 1)).content.decode()
    assert "<h2>Input</h2>" not in html
    Item.objects.filter(pk=slot_at(hit, 1).item_id).update(prompt_input="The quick brown fox.")
    html = alice_client.get(hit_url(hit, 1)).content.decode()
    assert "<h2>Input</h2>" in html and "The quick brown fox." in html


def test_multi_turn_prompt_shows_earlier_turns_as_a_transcript(alice_client, hit):
    Item.objects.filter(pk=slot_at(hit, 1).item_id).update(
        prompt=[
            {"role": "user", "content": "Can you suggest a houseplant?"},
            {"role": "assistant", "content": "A snake plant is hard to kill."},
            {"role": "user", "content": "How often should I water it?"},
        ]
    )
    html = alice_client.get(hit_url(hit, 1)).content.decode()
    assert "Conversation so far" in html
    transcript = html[html.index("Conversation so far") : html.index("<h2>Instruction</h2>")]
    assert "Can you suggest a houseplant?" in transcript and "A snake plant is hard to kill." in transcript
    assert '<span class="speaker">AI</span>' in transcript
    instruction = html[html.index("<h2>Instruction</h2>") : html.index("<h2>AI Response 1</h2>")]
    assert "How often should I water it?" in instruction and "houseplant" not in instruction
    assert "Conversation so far" not in alice_client.get(hit_url(hit, 2)).content.decode()


def test_next_unmarked_button_skips_marked_samples(alice_client, hit):
    rate(alice_client, hit, 2, Rating.RESPONSE_1_BETTER)
    rate(alice_client, hit, 3, Rating.RESPONSE_1_BETTER)
    html = alice_client.get(hit_url(hit, 1)).content.decode()
    button = re.search(r'<button type="button" data-nav="unmarked" hx-get="([^"]+)"', html)
    assert button and button.group(1) == hit_url(hit, 4)


def test_next_unmarked_goes_back_to_the_first_unmarked_sample(alice_client, hit):
    """From sample 3 with sample 2 un-marked, M goes to 2 (not forward to 4)."""
    for position in (1, 3):
        rate(alice_client, hit, position, Rating.RESPONSE_1_BETTER)
    html = alice_client.get(hit_url(hit, 3)).content.decode()
    button = re.search(r'<button type="button" data-nav="unmarked" hx-get="([^"]+)"', html)
    assert button and button.group(1) == hit_url(hit, 2)
    assert "Go to next un-marked sample" in html, "the lecture's wording stays"
    # On the first un-marked sample itself, M goes on to the next un-marked one.
    html = alice_client.get(hit_url(hit, 2)).content.decode()
    button = re.search(r'<button type="button" data-nav="unmarked" hx-get="([^"]+)"', html)
    assert button and button.group(1) == hit_url(hit, 4)


def test_rating_a_sample_given_back_tells_the_annotator(alice_client, bob, hit, settings):
    settings.HIT_TIMEOUT_MINUTES = 30
    Item.objects.exclude(pk__in=hit.slots.values("item_id")).delete()
    Hit.objects.filter(pk=hit.pk).update(last_activity_at=timezone.now() - timedelta(minutes=31))
    assert len(assign_hit(bob).ordered_slots()) == 6, "alice's idle HIT gave its items to bob"
    response = rate(alice_client, hit, 2, Rating.RESPONSE_1_BETTER)
    assert response.status_code == 409 and response["HX-Retarget"] == "#rating-error"
    assert "Sample 2 was given back" in response.content.decode()
    assert not Judgment.objects.exists()
    html = alice_client.get(hit_url(hit, 2)).content.decode()
    assert "This sample was given back" in html
    assert not re.search(r'<button type="submit" id="submit-hit"[^>]* disabled', html), "nothing left to rate"
