"""Hostile markdown and HTML in an item stays inert in Chromium: shown on the annotator's HIT page, in the prompt and
both responses, no script runs, no dialog opens, and no `javascript:` link or event-handler attribute survives."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import Batch, Item
from annotate.services import assign_hit
from tests.browser.test_csp_browser import log_in

pytestmark = pytest.mark.browser

# Each payload, if it ran, would open a dialog or set window.__pwned.
HOSTILE_PAYLOADS = {
    "script tag": "<script>window.__pwned = 1; alert(1)</script>",
    "img onerror": '<img src="x" onerror="window.__pwned = 1; alert(1)">',
    "svg onload": '<svg onload="window.__pwned = 1; alert(1)"></svg>',
    "body onload": '<body onload="window.__pwned = 1">',
    "iframe srcdoc": '<iframe srcdoc="<script>parent.__pwned = 1; alert(1)</script>"></iframe>',
    "iframe javascript": '<iframe src="javascript:parent.__pwned = 1"></iframe>',
    "markdown javascript link": "[click me](javascript:window.__pwned=1;alert(1))",
    "markdown javascript link, encoded": "[click me](jav&#x61;script:alert(1))",
    "html javascript link": '<a href="javascript:window.__pwned=1">click me</a>',
    "markdown data URL image": "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9ImFsZXJ0KDEpIj48L3N2Zz4=)",
    "data URL link": "[open](data:text/html,<script>alert(1)</script>)",
    "autolink javascript": "<javascript:alert(1)>",
    "style tag": "<style>body { background: url(javascript:alert(1)) } .sample { display: none }</style>",
    "inline style": '<p style="position:fixed;top:0;left:0;width:100%;height:100%;background:red">cover</p>',
    "object embed": '<object data="javascript:alert(1)"></object><embed src="javascript:alert(1)">',
    "form action": '<form action="javascript:alert(1)"><button>go</button></form>',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "details ontoggle": '<details open ontoggle="window.__pwned = 1; alert(1)"><summary>x</summary></details>',
    "math href": '<math><mtext><a href="javascript:alert(1)">x</a></mtext></math>',
    "broken tag nesting": "<<script>script>alert(1)<</script>/script><img src=x oNeRrOr=alert(1)//",
    "code span with html": "`<img src=x onerror=alert(1)>` and ```\n<script>alert(1)</script>\n```",
    "bidi controls": "evil \u202eelgoog\u202c.com <b>\u2066x\u2069</b> \u200f",
}

INSPECT_PAGE = """() => ({
  pwned: window.__pwned === 1,
  scripts: [...document.querySelectorAll('main script, .sample script')].length,
  javascriptLinks: [...document.querySelectorAll('[href], [src], [action], [data]')].filter(
    (el) => /^\\s*javascript:/i.test(el.getAttribute('href') || el.getAttribute('src') || el.getAttribute('action')
      || el.getAttribute('data') || '')).length,
  handlers: [...document.querySelectorAll('*')].filter(
    (el) => [...el.attributes].some((attribute) => attribute.name.toLowerCase().startsWith('on'))).length,
})"""


@pytest.mark.parametrize("payload", HOSTILE_PAYLOADS.values(), ids=HOSTILE_PAYLOADS.keys())
def test_hostile_markdown_is_inert(browser, live_server, transactional_db, alice, payload):
    batch = Batch.objects.create(name="hostile", samples_per_hit=1, guidelines=payload)
    Item.objects.create(
        batch=batch,
        external_id="1",
        prompt=[{"role": "user", "content": f"Which is better? {payload}"}],
        response_1=f"First. {payload}",
        response_2=f"Second. {payload}",
    )
    assign_hit(alice)
    reverse("home")  # load the URLconf before the live server's first request
    context = browser.new_context()
    dialogs: list[str] = []
    try:
        page, _ = log_in(context, live_server, "alice")
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.reload()
        page.wait_for_selector(".sample-number")
        # Links the payload may have made: following one must not run script either.
        for link in page.locator("main a").all():
            href = link.get_attribute("href") or ""
            assert not href.strip().lower().startswith(("javascript:", "data:")), href
        page.wait_for_timeout(300)
        found = page.evaluate(INSPECT_PAGE)
        assert found == {"pwned": False, "scripts": 0, "javascriptLinks": 0, "handlers": 0}
        assert dialogs == []
        assert "First." in page.content()  # the item was shown, not dropped
    finally:
        context.close()
