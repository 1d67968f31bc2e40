"""Home leads with what a marketer comes for: Generate, the Originality check and Campaigns (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.signin import signed_in

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120


def _home() -> AppTest:
    at = signed_in(AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_home_leads_with_generate_the_originality_check_and_campaigns():
    at = _home()
    assert [t.value for t in at.title] == ["Mosaic Studio"]
    first = [b.label for b in at.button if b.key and b.key.startswith("home_")]
    assert first == ["Make images", "Check an image", "Open campaigns"]
    steps = [m.value for m in at.markdown if m.value.startswith("**")]
    assert [s.split("**")[1] for s in steps[:3]] == ["1. Generate", "2. Check originality", "3. Plan a campaign"]
    # the three steps come before the example picture and the other pages
    headers = [s.value for s in at.subheader]
    assert headers.index("Start in three steps") < headers.index("What you will see")


@pytest.mark.parametrize(
    ("key", "heading"),
    [("home_generate", "Generate"), ("home_analyze", "Originality check"), ("home_campaigns", "Campaigns")],
)
def test_each_first_step_opens_its_page(key, heading):
    at = _home()
    at.button(key=key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert heading in [t.value for t in at.title]
