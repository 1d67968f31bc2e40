"""What a newcomer must not meet on a page: text cut off or running off the screen, and internal terms.

``page_problems(page)`` measures the rendered page in Chromium (bounding boxes, not guesses) and returns
one line per problem: an element whose text is clipped by its own box or by a clipping ancestor (an
ellipsis "R…", a label cut by its column), an element reaching past the viewport's right or left edge,
and any word of :data:`INTERNAL_TERMS` in visible text outside expanders (the technical detail belongs
under "Advanced" or a details expander). Horizontally scrollable containers (tabs on a phone) may hold
text past their edge: it can be scrolled to.
"""

from __future__ import annotations

import re

#: words made for us, not for a marketer (regular expressions, matched case-insensitively)
INTERNAL_TERMS: tuple[str, ...] = (
    r"\bbbels\b",
    r"fashion-unet",
    r"HF_HUB_OFFLINE",
    r"huggingface-cli",
    r"lfw_subset",
    r"\bskimage\b",
    r"\bPearson\b",
    r"\bDDIM\b",
    r"\bELS\b",
    r"copy_risk",
    r"local-score",
    r"patch centre",
    r"Traceback",
)

_MEASURE = r"""
() => {
  const vw = document.documentElement.clientWidth;
  const root = document.querySelector('[data-testid="stApp"]') || document.body;
  const problems = [];
  const folded = el => {  // inside the sidebar while it is folded away (phones): slid off the screen on purpose
    const sb = el.closest('[data-testid="stSidebar"]');
    return !!sb && sb.getBoundingClientRect().right <= 1;
  };
  const visible = el => (el.checkVisibility ? el.checkVisibility({visibilityProperty: true, opacityProperty: true})
                                            : el.offsetParent !== null);
  const ownText = el => Array.from(el.childNodes)
      .filter(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim())
      .map(n => n.textContent.trim()).join(' ');
  for (const el of root.querySelectorAll('*')) {
    const text = ownText(el) || (el.tagName === 'IMG' ? `[picture ${el.alt || ''}]` : '');
    if (!text || !visible(el)) continue;
    if (el.closest('[data-testid="stTooltipContent"], [role="tooltip"], script, style, noscript')) continue;
    if (folded(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width <= 2 || r.height <= 2) continue;  // screen-reader-only text ("Skip to main content")
    const style = getComputedStyle(el);
    if (style.overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1
        && style.overflowX !== 'auto' && style.overflowX !== 'scroll') {
      problems.push(`cut off: "${text.slice(0, 60)}" (${el.scrollWidth} px of text in ${el.clientWidth} px)`);
      continue;
    }
    let scrollable = false, clipped = null;
    for (let a = el.parentElement; a && a !== document.body && a !== document.documentElement; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.overflowX === 'visible') continue;
      if ((s.overflowX === 'auto' || s.overflowX === 'scroll') && a.scrollWidth > a.clientWidth + 1) {
        scrollable = true;
        break;
      }
      const ar = a.getBoundingClientRect();
      if (s.overflowX === 'hidden' || s.overflowX === 'clip') {
        if (r.right > ar.right + 1 || r.left < ar.left - 1) { clipped = a; break; }
      }
    }
    if (scrollable) continue;
    if (clipped) { problems.push(`cut off by its container: "${text.slice(0, 60)}"`); continue; }
    if (r.right > vw + 1 || r.left < -1) {
      const span = `${Math.round(r.left)}..${Math.round(r.right)} px of ${vw}`;
      problems.push(`runs off the screen: "${text.slice(0, 60)}" (${span})`);
    }
  }
  // a select box shows its choice in an input: a long choice is cut by the box
  for (const el of root.querySelectorAll('[data-testid="stSelectbox"] input, [data-testid="stMultiSelect"] input')) {
    if (!el.value || folded(el) || !visible(el)) continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      const widths = `${el.scrollWidth} px of text in ${el.clientWidth} px`;
      problems.push(`cut off: choice "${el.value.slice(0, 60)}" (${widths})`);
    }
  }
  // visible text outside expanders and popovers
  const parts = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || !n.textContent.trim()) continue;
    if (el.closest('details, [data-testid="stExpander"], [data-testid="stPopoverBody"], script, style')) continue;
    if (folded(el)) continue;
    if (!visible(el)) continue;
    parts.push(n.textContent);
  }
  for (const el of root.querySelectorAll('[data-testid="stSelectbox"] input')) {
    if (!el.value || folded(el) || el.closest('details, [data-testid="stExpander"]') || !visible(el)) continue;
    parts.push(el.value);
  }
  return {problems, text: parts.join('\n')};
}
"""


def page_problems(page, terms: tuple[str, ...] = INTERNAL_TERMS) -> list[str]:
    """Every cut-off or off-screen text and every internal term shown outside expanders, one line each."""
    measured = page.evaluate(_MEASURE)
    problems = list(dict.fromkeys(measured["problems"]))
    for term in terms:
        found = re.search(term, measured["text"], flags=re.IGNORECASE)
        if found:
            start = max(0, found.start() - 40)
            problems.append(f"internal term {found.group(0)!r} shown: …{measured['text'][start:found.end() + 40]!r}…")
    return problems
