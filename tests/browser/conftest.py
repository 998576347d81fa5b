"""Headless Debian Chromium driven by Playwright's sync API, for tests marked `browser`.

Playwright's sync API runs an asyncio loop in the test thread; Django would then refuse
database calls made by the test itself, hence DJANGO_ALLOW_ASYNC_UNSAFE.
"""

import os
import shutil

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# How long a browser test waits for the condition it needs (a page loaded, a text shown, a request answered). Tests
# wait for conditions, never for a fixed time, so a long limit costs nothing on a quiet machine; under load (the whole
# suite beside other work, load average 6 on 2 cores) Playwright's 5 s default failed tests that pass alone.
BROWSER_TIMEOUT_MS = int(os.environ.get("BROWSER_TIMEOUT_MS", "30000"))


@pytest.fixture(scope="session")
def browser():
    chromium_path = shutil.which("chromium")
    if chromium_path is None:
        pytest.skip("chromium is not installed (Debian package 'chromium'); browser tests need it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    sync_api.expect.set_options(timeout=BROWSER_TIMEOUT_MS)  # expect(...) has its own default, apart from the page's
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    yield page
    # A page sends what it holds when it is hidden (hit.js: time on a sample), so closing it would write to the
    # live server's database while the test database is flushed: a deadlock seen in CI. Nothing leaves after the test.
    context.route("**/*", lambda route: route.abort())
    context.close()
