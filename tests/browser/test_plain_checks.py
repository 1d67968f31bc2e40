"""The newcomer checks of tests/browser/plain.py find what they claim to find (on a static page in Chromium)."""

from __future__ import annotations

import pytest

from tests.browser.plain import page_problems
from tests.browser.studio import chromium_page

pytestmark = pytest.mark.browser

PAGE = """
<html><body style="margin:0">
  <button style="width:40px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap">Reject this image</button>
  <div style="width:120px; overflow:hidden"><span style="display:inline-block; white-space:nowrap">
    Check originality of this picture</span></div>
  <p style="position:absolute; left:1300px; white-space:nowrap">A long sentence that runs past the right edge</p>
  <div style="width:100px; overflow-x:auto"><span style="display:inline-block; white-space:nowrap">
    Tabs scroll sideways on a phone</span></div>
  <p>Made with the bbELS machine</p>
  <details><summary>Advanced</summary><p>Pearson r of each machine</p></details>
  <p style="width:1px; height:1px; overflow:hidden; position:absolute">Skip to main content</p>
</body></html>
"""


def test_the_checks_find_cut_off_text_off_screen_text_and_internal_terms():
    with chromium_page() as page:
        page.set_viewport_size({"width": 1400, "height": 900})
        page.set_content(PAGE)
        problems = page_problems(page)
    text = "\n".join(problems)
    assert 'cut off: "Reject this image"' in text
    assert 'cut off by its container: "Check originality of this picture"' in text
    assert 'runs off the screen: "A long sentence' in text
    assert "internal term 'bbELS'" in text
    # inside an expander, in a sideways-scrolling box, or screen-reader only: not problems
    assert "internal term 'Pearson'" not in text
    layout = [line for line in problems if not line.startswith("internal term")]
    assert not [line for line in layout if "Tabs scroll" in line or "Skip to main" in line], layout
    assert len(problems) == 4, problems


def test_a_plain_page_has_no_problems():
    with chromium_page() as page:
        page.set_viewport_size({"width": 390, "height": 844})
        page.set_content("<html><body><h1>Campaigns</h1><button>Reject</button><p>Low copy risk</p></body></html>")
        assert page_problems(page) == []
