"""A whole HIT in a real browser: log in, rate six samples with the keyboard only, submit."""

import re

import pytest
from django.conf import settings
from django.urls import reverse

from annotate.models import Batch, Hit, Item, Judgment, Rating
from annotate.services import assign_hit

pytestmark = pytest.mark.browser

# Which key is pressed on each sample, and whether that sample shows its responses swapped.
KEYS = ["1", "2", "3", "4", "2", "1"]
SWAPPED = [True, False, True, False, False, True]
SCREEN_RATING_BY_KEY = {str(key): value for key, value in enumerate(Rating.values, start=1)}


@pytest.fixture
def alice_hit(transactional_db, alice) -> Hit:
    batch = Batch.objects.create(name="browser", guidelines="Pick the **more helpful** response.")
    Item.objects.bulk_create(
        Item(
            batch=batch,
            external_id=str(i),
            prompt=[{"role": "user", "content": f"Question {i}: what is {i} plus {i}?"}],
            response_1=f"Item {i}, first response: the answer is {2 * i}.",
            response_2=f"Item {i}, second response: I am not sure about {i}.",
        )
        for i in range(1, 13)
    )
    hit = assign_hit(alice)
    for slot, swapped in zip(hit.ordered_slots(), SWAPPED, strict=True):
        slot.swapped = swapped
        slot.save(update_fields=["swapped"])
    # Load the URLconf here (the live server shares this process): its first import is slow
    # and would otherwise count against the browser's first page load.
    reverse("home")
    return hit


def test_annotator_rates_a_whole_hit_with_the_keyboard(live_server, page, alice_hit):
    from playwright.sync_api import expect

    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(error))
    # What the page asks the server for on the HIT: one request per judgment (issue 23), moves after a rating free.
    hit_requests = []
    page.on(
        "request",
        lambda request: (
            hit_requests.append(f"{request.method} {request.url.split(live_server.url, 1)[-1]}")
            if f"/hit/{alice_hit.pk}/" in request.url
            else None
        ),
    )
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "password")
    page.keyboard.press("Enter")
    hit_path = f"/hit/{alice_hit.pk}/"
    expect(page).to_have_url(re.compile(re.escape(hit_path) + "$"))
    page.wait_for_load_state()  # hit.js (deferred) listens for keys from here on

    progress = page.locator(".progress-text")
    sample_number = page.locator(".sample-number")
    submit = page.locator("#submit-hit")
    expect(progress).to_have_text("Your annotation progress for this HIT: 0/6 completed.")
    expect(submit).to_be_disabled()
    # M goes to the first un-marked sample in order: back from sample 2 to sample 1, not on to 3.
    page.keyboard.press("ArrowRight")
    expect(sample_number).to_have_text("Sample 2 of 6.")
    page.keyboard.press("m")
    expect(sample_number).to_have_text("Sample 1 of 6.")
    shown_as_response_1 = []

    for number, key in enumerate(KEYS, start=1):
        expect(sample_number).to_have_text(f"Sample {number} of 6.")
        shown_as_response_1.append(page.locator("#response-1 .markdown").inner_text().strip())
        page.wait_for_timeout(50)  # some time on screen to record
        page.keyboard.press(key)
        if number == 5:
            # Move on at once: the key waits for the rating's request to finish.
            page.keyboard.press("ArrowRight")
            expect(sample_number).to_have_text("Sample 6 of 6.")
        expect(progress).to_have_text(f"Your annotation progress for this HIT: {number}/6 completed.")
        if number == 5:
            continue
        expect(page.locator(f"#sample input[data-key='{key}']")).to_be_checked()
        if number == 3:
            screenshots = settings.VAR_DIR / "screenshots"
            screenshots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshots / "hit_page.png"), full_page=True)
            # A reload shows the same sample with its saved answer; ← goes back one.
            page.reload()
            expect(sample_number).to_have_text("Sample 3 of 6.")
            expect(page.locator("#sample input[data-key='3']")).to_be_checked()
            page.keyboard.press("ArrowLeft")
            expect(sample_number).to_have_text("Sample 2 of 6.")
            expect(page).to_have_url(re.compile(r"\?sample=2$"))
            expect(page.locator("#sample input[data-key='2']")).to_be_checked()
            page.keyboard.press("ArrowRight")
            expect(sample_number).to_have_text("Sample 3 of 6.")
        if number < 6:
            page.keyboard.press("ArrowRight")

    expect(submit).to_be_enabled()
    rates = [r for r in hit_requests if r.startswith("POST") and r.endswith("/rate/")]
    moves = [r for r in hit_requests if r.startswith("GET") and "?sample=" in r]
    assert len(rates) == 6
    # Asked for: 2 and back to 1 before any rating; the reload of 3, then 2, 3 and 4 (the reload dropped the sample
    # the rating of 3 sent). Every other move went to the sample its rating had sent along.
    assert [move.rsplit("=", 1)[1] for move in moves] == ["2", "1", "3", "2", "3", "4"], hit_requests
    assert not [r for r in hit_requests if r.endswith("/time/")], "time goes with the ratings and the submit"
    page.keyboard.press("m")  # nothing left un-marked: M goes to the Submit button
    expect(submit).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Thank You!")
    expect(page.get_by_role("button", name="Start the next HIT")).to_be_visible()

    assert not script_errors
    alice_hit.refresh_from_db()
    assert alice_hit.is_submitted
    judgments = {j.item_id: j for j in Judgment.objects.filter(hit=alice_hit)}
    assert len(judgments) == 6
    for slot, key, shown in zip(alice_hit.ordered_slots(), KEYS, shown_as_response_1, strict=True):
        judgment = judgments[slot.item_id]
        on_screen_first = slot.item.response_2 if slot.swapped else slot.item.response_1
        assert shown == on_screen_first, f"sample {slot.position}: AI Response 1 follows HitSlot.swapped"
        screen_rating = SCREEN_RATING_BY_KEY[key]
        assert judgment.rating == (-screen_rating if slot.swapped else screen_rating), f"sample {slot.position}"
        assert judgment.swapped == slot.swapped
        assert judgment.time_ms > 0, "time on the item is recorded"
