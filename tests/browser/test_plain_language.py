"""Issue 19, in real headless Chromium: every page as a newcomer meets it, at desktop and at phone width.

The studio starts with something on every page: a library of four uploaded pictures, a studio image made
from it (with its exact sources), a finished campaign with its originality checks. Each page, and the
states a marketer reaches on it (the Mosaic view of that image, a finished originality check, the campaign's
results, the Advanced settings opened), is measured in the browser (``tests/browser/plain.py``): no text cut
off or off the screen, no internal term outside an expander. Screenshots: ``test-artifacts/plain_*.png``.
The Streamlit log of the whole run has no warning and no stack trace.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.browser.plain import page_problems
from tests.browser.studio import ROOT, settle, shot

pytestmark = pytest.mark.browser

SIZES = {"desktop": {"width": 1400, "height": 900}, "phone": {"width": 390, "height": 844}}
#: what the Streamlit log must not hold (warnings of our code or of Streamlit, stack traces)
LOG_PROBLEMS = re.compile(r"\bWARNING\b|Traceback|Warning:|\bERROR\b")


@pytest.fixture
def studio_data(isolated_data_dir):
    """A 4-picture library, a studio image made from it, and a finished small campaign, before the server starts."""
    from tests.studio_images import studio_record, tiny_library

    library = tiny_library(isolated_data_dir.parent / "refs-pictures")
    studio_record(library, seed=0)
    done = subprocess.run(
        [sys.executable, "-m", "core", "campaign", "ab-ad-pair", "--field", "product=water bottle",
         "--field", "benefit=keeps drinks cold", "--size", "16", "--steps", "2", "--library", "faces",
         "--name", "Summer water bottle", "--out", str(isolated_data_dir.parent / "campaign-out")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return isolated_data_dir


def _whole_page_shot(page, size: dict, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so the window is made as tall as the page."""
    tall = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer]')]"
        ".map(e => e.scrollHeight), document.documentElement.scrollHeight)"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(size["height"], tall), 6000)})
    shot(page, name)
    page.set_viewport_size(size)


def _heading(page, text: str) -> None:
    page.get_by_role("heading", name=text, exact=True).first.wait_for()
    settle(page)


def _open(page, url: str, path: str, heading: str) -> None:
    page.goto(f"{url}/{path}")
    _heading(page, heading)


def _states(record_id: str) -> list[tuple[str, Callable]]:
    """(name, how to reach it) of every page and the states a newcomer reaches on it."""

    def goto(path: str, heading: str) -> Callable:
        return lambda page, url: _open(page, url, path, heading)

    def generate_advanced(page, url):
        _open(page, url, "generate", "Generate")
        page.get_by_text("Advanced", exact=True).first.click()
        settle(page)

    def mosaic(page, url):
        page.goto(f"{url}/mosaic?id={record_id}")
        page.locator(".st-key-verdict").wait_for()
        settle(page)

    def check(page, url):
        page.goto(f"{url}/analyze?id={record_id}")
        _heading(page, "Originality check")
        page.get_by_role("button", name="Check originality").click()
        page.locator(".st-key-verdict").wait_for(timeout=600_000)
        settle(page)

    def campaign_results(page, url):
        _open(page, url, "campaigns", "Campaigns")
        page.get_by_text("Results & export").first.click()
        page.get_by_text("Summer water bottle").first.wait_for()
        settle(page)

    def campaign_section(label: str) -> Callable:
        def reach(page, url):
            _open(page, url, "campaigns", "Campaigns")
            page.get_by_text(label, exact=True).first.click()
            settle(page)

        return reach

    return [
        ("home", goto("", "Mosaic Studio")),
        ("generate", goto("generate", "Generate")),
        ("generate_advanced", generate_advanced),
        ("campaigns", goto("campaigns", "Campaigns")),
        ("campaign_results", campaign_results),
        ("campaign_templates", campaign_section("Templates")),
        ("campaign_brand_kit", campaign_section("Brand kit")),
        ("mosaic", mosaic),
        ("check", check),
        ("gallery", goto("gallery", "Gallery")),
        ("libraries", goto("libraries", "Libraries")),
        ("lab", goto("lab", "Creativity Lab")),
        ("team", goto("team", "Team")),
    ]


def test_every_page_reads_plainly_and_fits_at_desktop_and_phone_width(page, studio, isolated_data_dir):
    from core.store import Store

    record = next(r for r in Store().list() if r.library == "refs")
    found: list[str] = []
    for size_name, size in SIZES.items():
        page.set_viewport_size(size)
        for name, reach in _states(record.id):
            try:
                reach(page, studio)
            except Exception:
                shot(page, f"plain_{name}_{size_name}_FAILED")  # what the page showed instead
                raise
            found += [f"{name} ({size_name}): {problem}" for problem in page_problems(page)]
            _whole_page_shot(page, size, f"plain_{name}_{size_name}")
    assert not found, "\n".join(found)

    log = (isolated_data_dir.parent / "streamlit.log").read_text()
    bad = [line for line in log.splitlines() if LOG_PROBLEMS.search(line)]
    assert not bad, "the Streamlit log has warnings or stack traces:\n" + "\n".join(bad[:40])
