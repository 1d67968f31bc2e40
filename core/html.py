"""The one place where text from people (file names, titles, notes, prompts, template fields) is made safe
to show in a page.

Streamlit reads the text of ``st.markdown``, ``st.caption``, ``st.info``, expander labels and the like as
Markdown, and ``unsafe_allow_html=True`` also lets HTML through. A picture named
``<img src=x onerror=...>.png`` or ``[click](javascript:...)`` must appear as those characters, never
become a tag or a link. The pages therefore never put such text into Markdown or HTML themselves:

- :func:`md` for text inside Markdown (every Streamlit text element, with or without HTML);
- :func:`escape` for HTML attribute values and HTML written outside Markdown (files, e-mails);
- :func:`css_colour` for a colour that goes into a ``style`` attribute;
- :func:`colour_mark` and :func:`swatches`: the small HTML the pages draw, built from the helpers above.

This module never imports Streamlit.
"""

from __future__ import annotations

import html
import re
import string

__all__ = ["colour_mark", "css_colour", "escape", "md", "swatches"]

#: every ASCII punctuation character can be backslash-escaped in Markdown (CommonMark 2.4), which turns it
#: into a plain character: no emphasis, link, image, code span, HTML tag, entity, heading, list, table,
#: maths (``$``) or Streamlit directive (``:red[...]``, ``:material/icon:``) can start from it
_MARKDOWN_SPECIAL = frozenset(string.punctuation)
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
FALLBACK_COLOUR = "#999999"


def escape(text: object) -> str:
    """``text`` for HTML (element content or a quoted attribute value): ``& < > " '`` become entities."""
    return html.escape(str(text), quote=True)


def md(text: object) -> str:
    """``text`` shown as itself inside Streamlit Markdown (also where ``unsafe_allow_html`` is on).

    Every ASCII punctuation character is backslash-escaped, so nothing in the text can open a tag, a link,
    an image, a code span or any other Markdown construct; line breaks become spaces (one line of text
    cannot start a heading, list or table) and control characters are dropped. Do not put the result
    inside backticks: code spans show backslashes as they are.
    """
    value = _CONTROL.sub("", _LINE_BREAKS.sub(" ", str(text)))
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in value)


def css_colour(value: object, fallback: str = FALLBACK_COLOUR) -> str:
    """A hex colour (``#abc`` or ``#aabbcc``) safe for a ``style`` attribute; anything else gives ``fallback``."""
    text = str(value).strip()
    return text if _HEX_COLOUR.fullmatch(text) else fallback


def colour_mark(colour: object) -> str:
    """A small square in ``colour`` (HTML for ``st.markdown(..., unsafe_allow_html=True)``)."""
    return f'<span style="color:{css_colour(colour)}">■</span>'


def swatches(colours: list[str]) -> str:
    """Small coloured squares for hex codes, the other colour names as words (HTML for ``unsafe_allow_html``)."""
    parts = []
    for raw in colours:
        colour = str(raw).strip()
        if _HEX_COLOUR.fullmatch(colour) and len(colour) == 7:
            parts.append(
                f'<span title="{escape(colour)}" style="display:inline-block;width:1.2em;height:1.2em;'
                f'border-radius:3px;border:1px solid #9995;margin-right:4px;background:{css_colour(colour)}"></span>'
            )
        elif colour:
            parts.append(f'<span style="margin-right:6px">{md(colour)}</span>')
    return "".join(parts)
