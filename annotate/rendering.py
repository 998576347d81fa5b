"""Markdown for the HIT page: prompts, responses and guidelines.

Responses come from models and imported files, so they are untrusted. markdown-it
runs with raw HTML off (any tag in the text is escaped and shown as text), then nh3
cleans the result once more, so nothing a response says can run in the page.

Bidirectional control characters (U+202E RIGHT-TO-LEFT OVERRIDE and its kin) would
silently reorder a response on screen ("evil" shown as "live"); after sanitising, each
one is replaced with a visible marker, so the annotator sees the text in the order
it was written and sees that something was there.

Rendering a long text costs seconds, and the HIT page redraws its sample on every
click: `render_markdown_cached` renders each distinct text once and keeps the HTML
in the database (RenderedMarkdown), keyed by a hash of the text and RENDERER_VERSION,
and the recently used ones in the process's memory too, so a redraw costs no query.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# Part of every cache key: change it whenever render_markdown's output changes, so old HTML is not served.
RENDERER_VERSION = "2"

# Images are off: a response must not make the annotator's browser fetch anything.
_markdown = (
    MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"]).disable("image")
)
_ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}

# Embeddings, overrides and isolates, the implicit marks, and the Arabic letter mark.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
# nh3's output is well formed and double-quotes every attribute value, so a tag is "<", then anything but ">"
# outside quotes, then ">": the text between tags is what the annotator reads.
_TAG = re.compile(r'(<(?:[^>"]|"[^"]*")*>)')


def bidi_label(char: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE'."""
    return f"U+{ord(char):04X} {unicodedata.name(char, 'BIDIRECTIONAL CONTROL')}"


def _plain_marker(match: re.Match) -> str:
    return f"⟨U+{ord(match.group()):04X}⟩"


def visible_controls(text: object) -> str:
    """Plain text (a batch name, an id, a file name) with every bidirectional control shown as ⟨U+XXXX⟩: the rule of
    the HIT's texts for text that is not markdown. Templates use it as the `shown` filter; __str__ of the models
    whose names users choose use it too, so admin lists, form choices and messages show the same."""
    text = "" if text is None else str(text)
    return _BIDI.sub(_plain_marker, text) if _BIDI.search(text) else text


def _bidi_marker(match: re.Match) -> str:
    char = match.group()
    return f'<span class="bidi-mark" title="{escape(bidi_label(char))}">⟨U+{ord(char):04X}⟩</span>'


def show_bidi_controls(html: str) -> str:
    """Sanitised HTML with every bidirectional control character shown as a visible marker.

    In text, a <span class="bidi-mark"> with the character's name as its title; inside a tag (a link's title), the
    plain ⟨U+XXXX⟩ text, since markup cannot go there.
    """
    if not _BIDI.search(html):
        return html
    parts = _TAG.split(html)
    for index, part in enumerate(parts):
        if index % 2:  # a tag
            parts[index] = _BIDI.sub(_plain_marker, part)
        else:
            parts[index] = _BIDI.sub(_bidi_marker, part)
    return "".join(parts)


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
    return mark_safe(show_bidi_controls(cleaned))


def markdown_digest(text: str) -> str:
    return hashlib.sha256(f"{RENDERER_VERSION}\0{text}".encode()).hexdigest()


class _RecentHtml:
    """The most recently used rendered texts of this process, up to a total size: a click's redraw asks no one."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self.entries: OrderedDict[str, str] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, digest: str) -> str | None:
        with self.lock:
            html = self.entries.get(digest)
            if html is not None:
                self.entries.move_to_end(digest)
            return html

    def put(self, digest: str, html: str) -> None:
        if len(html) > self.max_chars // 8:
            return  # one huge text would push out everything else
        with self.lock:
            if digest in self.entries:
                return
            self.entries[digest] = html
            self.chars += len(html)
            while self.chars > self.max_chars:
                _, dropped = self.entries.popitem(last=False)
                self.chars -= len(dropped)


# Per process: keyed by content digest like the table, so it can never serve stale HTML.
_recent = _RecentHtml(max_chars=16_000_000)


def forget_recent() -> None:
    """Empty this process's memory of rendered texts (tests, whose database starts empty each time)."""
    with _recent.lock:
        _recent.entries.clear()
        _recent.chars = 0


def render_markdown_cached(texts: Sequence[str]) -> list[SafeString]:
    """`render_markdown` of each text, rendered at most once ever: from memory, else one query for all, new ones
    stored."""
    from annotate.models import RenderedMarkdown

    digests = [markdown_digest(text or "") for text in texts]
    known = {digest: html for digest in digests if (html := _recent.get(digest)) is not None}
    missing = set(digests) - set(known)
    if missing:
        stored = dict(RenderedMarkdown.objects.filter(digest__in=missing).values_list("digest", "html"))
        for digest, html in stored.items():
            _recent.put(digest, html)
        known.update(stored)
    fresh: dict[str, str] = {}
    for text, digest in zip(texts, digests, strict=True):
        if digest not in known and digest not in fresh:
            fresh[digest] = render_markdown(text)
    if fresh:
        # Two first views at once may both render; the second insert is ignored, the HTML is the same.
        RenderedMarkdown.objects.bulk_create(
            [RenderedMarkdown(digest=digest, html=html) for digest, html in fresh.items()], ignore_conflicts=True
        )
        known.update(fresh)
        for digest, html in fresh.items():
            _recent.put(digest, html)
    return [mark_safe(known[digest]) for digest in digests]
