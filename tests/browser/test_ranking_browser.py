"""A whole ranking HIT in a real browser: K = 4 responses per sample, ranked with the keyboard only (with a reload
mid-HIT), then one order changed by dragging with the mouse; the stored orders are checked against the shuffles."""

import re

import pytest
from django.conf import settings
from django.urls import reverse

from annotate.models import Hit, Judgment
from annotate.services import assign_hit
from rlhf.rankings import LETTERS, to_item_tiers
from tests.annotate.factories import make_ranking_batch
from tests.browser.test_csp_browser import RECORD_VIOLATIONS

pytestmark = pytest.mark.browser

# The order typed on each sample, as screen letters best first (the fourth is implied: the one left over is last).
FINAL_SCREEN_ORDERS = ["BDAC", "CDAB", "DCBA", "DACB"]


@pytest.fixture
def alice_hit(transactional_db, alice) -> Hit:
    batch = make_ranking_batch("browser-ranking", n_items=4, size=4, samples_per_hit=4)
    batch.guidelines = "Rank the answers from the **most helpful** to the least."
    batch.save()
    for item in batch.items.all():
        item.response_1 += " " + "A long line of text that wraps. " * 60  # a long answer scrolls in its box
        item.save()
    hit = assign_hit(alice)
    # Shuffles stay as assignment drew them, except that the first is surely not the identity.
    hit.slots.filter(position=1).update(display_order=[4, 2, 1, 3])
    reverse("home")  # load the URLconf before the browser's first request (see test_hit_browser.py)
    return hit


def test_annotator_ranks_a_whole_hit_by_keyboard_and_drags_once(live_server, page, alice_hit):
    from playwright.sync_api import expect

    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(error))
    page.on("console", lambda m: script_errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.context.add_init_script(RECORD_VIOLATIONS)  # SortableJS's drag must pass the CSP too
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "password")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(f"/hit/{alice_hit.pk}/") + "$"))
    page.wait_for_load_state()  # hit.js (deferred) listens for keys from here on

    progress = page.locator(".progress-text")
    sample_number = page.locator(".sample-number")
    order = page.locator("#order-text")
    submit = page.locator("#submit-hit")

    def badge(letter: str):
        return page.locator(f"#response-{letter} .place-badge")

    def expect_order(text: str) -> None:
        expect(order).to_have_text(text)
        for place, letter in enumerate(text.split(), start=1):
            expect(badge(letter)).to_have_text({1: "1st", 2: "2nd", 3: "3rd"}.get(place, f"{place}th"))

    expect(page.locator("h1")).to_contain_text("Rank the AI responses")
    expect(progress).to_have_text("Your annotation progress for this HIT: 0/4 completed.")
    expect(page.locator(".response-name")).to_have_text(["Response A", "Response B", "Response C", "Response D"])
    slots = alice_hit.ordered_slots()
    shown_texts = [page.locator(f"#response-body-{letter}").inner_text().strip() for letter in "ABCD"]
    for letter_index, number in enumerate(slots[0].display_order):
        assert shown_texts[letter_index].startswith(slots[0].item.response(number)[:20]), "letters follow the shuffle"

    # Sample 1: each key press shows the place it took; the fourth is placed last by itself.
    page.wait_for_timeout(1000)  # time read before the first letter counts once the order is complete
    page.keyboard.press("b")
    expect_order("B")
    expect(badge("A")).to_have_count(0)
    page.keyboard.press("d")
    expect_order("B D")
    page.keyboard.press("a")
    expect_order("B D A C")
    expect(progress).to_have_text("Your annotation progress for this HIT: 1/4 completed.")
    page.keyboard.press("b")  # ranked already: nothing changes, the page says why
    expect(page.locator("#ranking-error")).to_contain_text("B is ranked already")
    expect_order("B D A C")
    page.keyboard.press("m")  # M: next un-marked sample, as on the pairwise HIT

    # Sample 2: Backspace undoes the last letter, then typing goes on; keys typed fast wait their turn.
    expect(sample_number).to_have_text("Sample 2 of 4.")
    page.keyboard.press("c")
    page.keyboard.press("a")
    expect_order("C A")
    page.keyboard.press("Backspace")
    expect_order("C")
    for key in "da":
        page.keyboard.press(key)
    expect_order("C D A B")
    expect(progress).to_have_text("Your annotation progress for this HIT: 2/4 completed.")
    page.keyboard.press("ArrowRight")

    # Sample 3: a partial order survives a reload; Escape clears it.
    expect(sample_number).to_have_text("Sample 3 of 4.")
    page.keyboard.press("a")
    page.keyboard.press("b")
    expect_order("A B")
    screenshots = settings.VAR_DIR / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshots / "ranking_hit_page.png"), full_page=False)
    page.reload()
    page.wait_for_load_state()
    expect(sample_number).to_have_text("Sample 3 of 4.")
    expect_order("A B")
    expect(progress).to_have_text("Your annotation progress for this HIT: 2/4 completed.")
    page.keyboard.press("Escape")
    expect(order).to_have_text("nothing yet")
    expect(page.locator("#sample .place-badge")).to_have_count(0)
    for key in "DCB":  # capitals work too
        page.keyboard.press(f"Shift+{key}")
    expect_order("D C B A")
    page.keyboard.press("ArrowRight")

    # Sample 4, then Backspace on a complete order: the left-over letter was never typed, so the last typed goes.
    expect(sample_number).to_have_text("Sample 4 of 4.")
    for key in "dac":
        page.keyboard.press(key)
    expect_order("D A C B")
    page.keyboard.press("Backspace")
    expect_order("D A")
    expect(progress).to_have_text("Your annotation progress for this HIT: 4/4 completed.")  # the saved order stays
    page.keyboard.press("c")
    expect_order("D A C B")

    # One drag with the mouse: B from last place to first.
    page.locator(".rank-order .chip").first.scroll_into_view_if_needed()
    source = page.locator(".rank-order .chip", has_text="B").bounding_box()
    target = page.locator(".rank-order .chip").first.bounding_box()
    page.mouse.move(source["x"] + source["width"] / 2, source["y"] + source["height"] / 2)
    page.mouse.down()
    page.mouse.move(source["x"] - 10, source["y"] + source["height"] / 2, steps=5)
    page.mouse.move(target["x"] + 4, target["y"] + target["height"] / 2, steps=15)
    page.mouse.up()
    expect_order("B D A C")
    final_orders = [*FINAL_SCREEN_ORDERS[:3], "BDAC"]

    violations = page.evaluate("window.__cspViolations")
    expect(submit).to_be_enabled()
    page.keyboard.press("m")  # nothing un-marked: M goes to Submit
    expect(submit).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Thank You!")
    assert not script_errors and violations == []

    alice_hit.refresh_from_db()
    assert alice_hit.is_submitted
    judgments = {j.item_id: j for j in Judgment.objects.filter(hit=alice_hit)}
    assert len(judgments) == 4
    for slot, letters in zip(alice_hit.ordered_slots(), final_orders, strict=True):
        screen_tiers = [[LETTERS.index(letter) + 1] for letter in letters]
        judgment = judgments[slot.item_id]
        assert judgment.ranking == to_item_tiers(screen_tiers, slot.display_order), f"sample {slot.position}"
        assert judgment.display_order == slot.display_order
        assert judgment.ranking[0][0] == slot.display_order[LETTERS.index(letters[0])], "best is what was shown first"
        assert judgment.time_ms > (1000 if slot.position == 1 else 0), f"sample {slot.position}: time on the item"
        assert slot.draft_ranking is None


def test_ties_by_keyboard_and_ranking_by_clicks(live_server, page, transactional_db, alice):
    """= then a letter ties it with the previous place where the batch allows ties; a click ranks a letter next."""
    from playwright.sync_api import expect

    make_ranking_batch("browser-ties", n_items=2, size=3, samples_per_hit=2, allow_ties=True)
    hit = assign_hit(alice)
    hit.slots.update(display_order=[2, 3, 1])
    reverse("home")
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(error))
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "password")
    page.keyboard.press("Enter")
    order = page.locator("#order-text")
    page.wait_for_url(re.compile(re.escape(f"/hit/{hit.pk}/") + "$"))
    page.wait_for_load_state()
    expect(page.locator(".sample-number")).to_have_text("Sample 1 of 2.")

    page.keyboard.press("=")  # nothing to tie with yet
    expect(page.locator("#ranking-error")).to_contain_text("Type a letter first")
    page.keyboard.press("c")
    page.keyboard.press("=")
    expect(page.locator("#tie-pending")).to_be_visible()
    page.keyboard.press("a")
    expect(order).to_have_text("(C=A) B")
    expect(page.locator("#response-A .place-badge")).to_have_text("1st (tie)")
    expect(page.locator("#response-B .place-badge")).to_have_text("3rd")
    page.keyboard.press("Backspace")  # undoes the tie: A leaves C's place
    expect(order).to_have_text("C")
    expect(page.locator("#order-status")).to_contain_text("your complete order (C=A) B stays")
    page.keyboard.press("ArrowRight")

    # Sample 2 with the mouse only: click the letters in "Not ranked yet", best first.
    expect(page.locator(".sample-number")).to_have_text("Sample 2 of 2.")
    page.locator("#rank-pool button[data-letter=B]").click()
    expect(order).to_have_text("B")
    page.locator("#rank-pool button[data-letter=C]").click()
    expect(order).to_have_text("B C A")
    expect(page.locator(".progress-text")).to_have_text("Your annotation progress for this HIT: 2/2 completed.")
    assert not script_errors

    slot_1, slot_2 = hit.ordered_slots()
    assert slot_1.draft_ranking == [[3]], "the new order being typed"
    assert Judgment.objects.get(item=slot_1.item).ranking == [[1, 2], [3]], "the saved (C=A) B stays until replaced"
    assert Judgment.objects.get(item=slot_2.item).ranking == [[3], [1], [2]]  # B C A shown as [2, 3, 1]
