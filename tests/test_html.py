"""core.html: text from people shown as itself in Markdown and HTML, whatever it contains."""

from __future__ import annotations

import html
import re

import pytest

from core.html import colour_mark, css_colour, escape, md, swatches

HOSTILE = [
    "<img src=x onerror=alert(1)>.png",
    '`<iframe srcdoc="<img src=x onerror=parent.alert(1)>">`.png',
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "![tracker](https://example.com/t.png)",
    "**bold** _it_ ~~gone~~ `code` $x^2$ :red[red] :material/home: &lt;b&gt; &#60;i&#62;",
    "# heading",
    "- item",
    "1. item",
    "| a | b |",
    "> quote",
    "line one\nline two\r\n<b>three</b>\u2028four",
    "back\\slash \\<b>",
    "<https://example.com>",
    "tab\tand\x00nul\x1b[31m",
    "😀 Ünïcödé — “quotes” «guillemets»",
]


def test_escape_for_html():
    assert escape('<a href="x" onclick=\'y\'>&') == "&lt;a href=&quot;x&quot; onclick=&#x27;y&#x27;&gt;&amp;"
    assert escape(42) == "42"


def test_md_escapes_every_ascii_punctuation_and_keeps_the_rest():
    assert md("plain words 123") == "plain words 123"
    assert md("a<b>c") == "a\\<b\\>c"
    assert md("[x](y)") == "\\[x\\]\\(y\\)"
    assert md("😀 Ünïcödé") == "😀 Ünïcödé"
    assert "\n" not in md("a\nb\r\nc") and "\x00" not in md("a\x00b")


@pytest.mark.parametrize("text", HOSTILE)
def test_md_renders_as_the_same_text_in_commonmark(text):
    """Rendered by a CommonMark parser with raw HTML enabled (as Streamlit's ``unsafe_allow_html``): one
    paragraph whose text is exactly the input (line breaks as spaces, control characters dropped)."""
    markdown_it = pytest.importorskip("markdown_it")
    parser = markdown_it.MarkdownIt("commonmark", {"html": True})
    rendered = parser.render(md(text)).strip()
    assert rendered.startswith("<p>") and rendered.endswith("</p>"), rendered
    inner = rendered[3:-4]
    assert "<" not in inner.replace("&lt;", ""), f"a tag came through: {rendered}"
    expected = re.sub(r"[\x00-\x08\x0e-\x1f\x7f]", "", re.sub(r"[\r\n\u2028]+", " ", text))
    assert html.unescape(inner) == expected


@pytest.mark.parametrize("text", HOSTILE)
def test_md_inside_html_stays_text(text):
    """Inside an inline HTML element (``<code>{md(name)}</code>``) the text is still only text."""
    markdown_it = pytest.importorskip("markdown_it")
    parser = markdown_it.MarkdownIt("commonmark", {"html": True})
    rendered = parser.render(f"{colour_mark('#123456')} **12 %** · <code>{md(text)}</code>").strip()
    inner = rendered.split("<code>", 1)[1].rsplit("</code>", 1)[0]
    assert "<" not in inner.replace("&lt;", ""), rendered


def test_css_colour_only_lets_hex_colours_through():
    assert css_colour("#1B2A4A") == "#1B2A4A" and css_colour(" #abc ") == "#abc"
    for bad in ("red;background:url(x)", "#12345g", "#1234567", "expression(alert(1))", '#fff" onmouseover="x', ""):
        assert css_colour(bad) == "#999999"


def test_colour_mark_and_swatches_escape_what_they_are_given():
    assert colour_mark('#fff"><script>') == '<span style="color:#999999">■</span>'
    out = swatches(["#1B2A4A", "navy", "<img src=x onerror=alert(1)>", '#"><b>', "  "])
    assert "background:#1B2A4A" in out
    assert ">navy<" in out
    assert "\\<img src\\=x onerror\\=alert\\(1\\)\\>" in out
    markdown_it = pytest.importorskip("markdown_it")
    rendered = markdown_it.MarkdownIt("commonmark", {"html": True}).render(out)
    assert "<img" not in rendered and "<b>" not in rendered
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered
