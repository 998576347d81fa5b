"""Markdown for prompts and responses: formatting kept, every piece of HTML made harmless."""

from annotate.rendering import render_markdown


def test_code_blocks_and_lists_render():
    html = render_markdown(
        "Try this:\n\n```python\nif a < b:\n    print('yes')\n```\n\n1. first\n2. second\n\n- x\n- y"
    )
    assert "<pre><code>if a &lt; b:\n    print('yes')\n</code></pre>" in html
    assert "<ol>\n<li>first</li>\n<li>second</li>\n</ol>" in html
    assert "<ul>\n<li>x</li>\n<li>y</li>\n</ul>" in html


def test_emphasis_inline_code_and_tables():
    html = render_markdown("**bold** and `x = 1`\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<strong>bold</strong>" in html and "<code>x = 1</code>" in html
    assert "<table>" in html and "<td>1</td>" in html


def test_single_newlines_keep_their_line_breaks():
    assert render_markdown("line one\nline two") == "<p>line one<br>\nline two</p>\n"


def test_raw_html_is_shown_as_text_not_run():
    html = render_markdown('<script>alert(1)</script>\n\n<b onmouseover="x()">hi</b> <iframe src="https://e.org">')
    assert "<script" not in html and "<b " not in html and "<iframe" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;iframe" in html


def test_html_inside_code_blocks_stays_escaped():
    html = render_markdown("```html\n<script>steal()</script>\n```")
    assert "<pre><code>&lt;script&gt;steal()&lt;/script&gt;\n</code></pre>" in html


def test_dangerous_links_are_not_links():
    html = render_markdown("[click](javascript:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=)")
    assert "<a" not in html and "javascript:alert(1)" in html


def test_safe_links_open_elsewhere_and_images_are_not_fetched():
    html = render_markdown("[docs](https://example.org) ![tracker](https://example.org/pixel.png)")
    assert '<a href="https://example.org" target="_blank" rel="noopener noreferrer nofollow">docs</a>' in html
    assert "<img" not in html


def test_empty_text_is_empty():
    assert render_markdown("") == "" and render_markdown(None) == ""
