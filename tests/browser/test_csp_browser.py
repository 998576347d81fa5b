"""The Content-Security-Policy in Chromium: the annotator's pages, the dashboards, the login, account and Swagger UI
pages run and render with nothing refused (no `securitypolicyviolation` event, no CSP console error)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from annotate.models import Batch, Item
from annotate.services import assign_hit
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

# Runs in every page before its own scripts (Playwright injects it outside the page's CSP).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} in ${e.documentURI}`);
});
"""


class ViolationLog:
    def __init__(self, context) -> None:
        self.console: list[str] = []
        self.events: list[str] = []
        context.add_init_script(RECORD_VIOLATIONS)
        self.context = context

    def watch(self, page) -> None:
        page.on(
            "console",
            lambda message: (
                self.console.append(message.text)
                if "Content Security Policy" in message.text or "Refused to" in message.text
                else None
            ),
        )
        page.on("pageerror", lambda error: self.console.append(f"page error: {error}"))

    def collect(self, page) -> list[str]:
        """Every violation so far on this page (call before leaving it) and on earlier pages."""
        self.events += page.evaluate("window.__cspViolations.splice(0)")
        return self.console + self.events


def log_in(context, live_server, username: str):
    log = ViolationLog(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    log.watch(page)
    page.goto(f"{live_server.url}{reverse('login')}")
    assert log.collect(page) == [], "the login page"
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"^(?!.*/accounts/login/)"))
    return page, log


@pytest.fixture
def batch(transactional_db, alice, charlie) -> Batch:
    batch = Batch.objects.create(name="csp", guidelines="Pick the **more helpful** response.")
    Item.objects.bulk_create(
        Item(
            batch=batch,
            external_id=str(i),
            prompt=[{"role": "user", "content": f"Question {i}?"}],
            response_1=f"Answer {i} with `code` and a [link](https://example.org).",
            response_2=f'Answer {i} with <b style="color:red">inline style</b> and <script>alert(1)</script>.',
        )
        for i in range(1, 7)
    )
    assign_hit(alice)
    reverse("home")  # load the URLconf before the live server's first request
    return batch


def test_the_detector_sees_a_violation(browser, live_server, batch):
    """An inline style added to a page is reported: an empty log below means nothing was refused."""
    context = browser.new_context()
    try:
        log = ViolationLog(context)
        page = context.new_page()
        log.watch(page)
        page.goto(f"{live_server.url}{reverse('login')}")
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<div style=\"color: red\">x</div>')")
        page.wait_for_function("window.__cspViolations.length > 0")  # the event, however long it takes
        assert any("style-src" in line for line in log.collect(page))
    finally:
        context.close()


def test_annotator_pages_pass_the_policy(browser, live_server, batch):
    context = browser.new_context()
    try:
        page, log = log_in(context, live_server, "alice")
        from playwright.sync_api import expect

        expect(page.locator(".sample-number")).to_have_text("Sample 1 of 6.")
        page.keyboard.press("1")  # an htmx request and swap
        expect(page.locator(".progress-text")).to_have_text("Your annotation progress for this HIT: 1/6 completed.")
        page.keyboard.press("ArrowRight")
        expect(page.locator(".sample-number")).to_have_text("Sample 2 of 6.")
        assert log.collect(page) == [], "the HIT page"
        page.goto(f"{live_server.url}{reverse('account-token')}")
        page.get_by_role("button", name="Create token").click()
        expect(page.locator(".token-key")).to_be_visible()
        assert log.collect(page) == [], "the account page"
    finally:
        context.close()


def test_staff_pages_pass_the_policy(browser, live_server, batch):
    context = browser.new_context()
    try:
        page, log = log_in(context, live_server, "charlie")
        for path in (
            reverse("quality:index"),
            reverse("quality:batch", args=[batch.pk]),
            reverse("quality:export"),
            reverse("rewardmodel:run_list"),
            reverse("rewardmodel:run_new"),
            reverse("policy:run_list"),
            reverse("admin:index"),
        ):
            response = page.goto(f"{live_server.url}{path}")
            assert response.status == 200, path
            page.wait_for_load_state("load")
            assert log.collect(page) == [], path
        page.goto(f"{live_server.url}/api/docs/")
        page.locator(".swagger-ui .info .title").wait_for()  # Swagger UI ran and rendered the schema
        assert "Arbiter API" in page.locator(".swagger-ui .info .title").inner_text()
        page.wait_for_timeout(300)
        assert log.collect(page) == [], "Swagger UI"
    finally:
        context.close()
