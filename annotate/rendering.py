"""Markdown for the HIT page: prompts, responses and guidelines.

Responses come from models and imported files, so they are untrusted. markdown-it
runs with raw HTML off (any tag in the text is escaped and shown as text), then nh3
cleans the result once more, so nothing a response says can run in the page.
"""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# Images are off: a response must not make the annotator's browser fetch anything.
_markdown = (
    MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"]).disable("image")
)
_ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}


def render_markdown(text: str) -> SafeString:
    """HTML for `text` as markdown, safe to put into a page as it is."""
    html = _markdown.render(text or "")
    cleaned = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        link_rel="noopener noreferrer nofollow",
        # Links open elsewhere so the HIT stays on screen.
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return mark_safe(cleaned)
