"""Stored cross-site scripting, in real headless Chromium.

A library whose picture names, class name, title and description carry HTML, script and Markdown, a
generated image with such a title and a campaign with such a name and brief are made in the data folder
before the studio starts. Every page that shows them is opened (Libraries, Generate, Mosaic view, an
originality check run against that library, Gallery, Campaigns); no script may run, no injected element
may appear, and the names must be shown as the characters they are. Screenshots: ``test-artifacts/xss_*.png``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from tests.browser.studio import shot

pytestmark = pytest.mark.browser

LIBRARY = "xss-lib"
LIBRARY_TITLE = "Brand <img src=x onerror=window.__xss=1> **bold**"
DESCRIPTION = 'About <script>window.__xss=1</script> [click](javascript:window.__xss=1) `<b onclick="x">`'
CLASS = "<img src=y onerror=window.__xss=2>"
NAMES = [
    "<img src=x onerror=window.__xss=1>.png",
    '`<iframe srcdoc="&lt;img src=x onerror=parent.__xss=1&gt;">`.png',
    "<svg onload=window.__xss=1>.png",
    "[click me](javascript:window.__xss=1).png",
    "<a href=javascript:window.__xss=1>link<a>.png",
    "**bold** _it_ :red[red] $x$ &lt;b&gt;.png",
]
TITLE = "<img src=x onerror=window.__xss=3> spring title"
CAMPAIGN = "<img src=x onerror=window.__xss=4> <b>launch</b>"
PRODUCT = "<svg onload=window.__xss=5> oat milk [x](javascript:window.__xss=5)"

#: elements and attributes only an injection would put on the page
INJECTED = (
    "[onerror], [onload], [onclick], [onmouseover], iframe[srcdoc], a[href^='javascript'], "
    "img[src='x'], img[src='y'], svg[onload]"
)


def _picture(seed: int) -> bytes:
    import io

    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def studio_data(isolated_data_dir):
    """The library, a generated image and a campaign, all carrying HTML, made before the studio starts."""
    from core.campaigns import CampaignStore, plan_campaign
    from core.engines.local_score import LocalScoreEngine, LocalScoreRequest
    from core.libraries import LibraryManager
    from core.store import Store

    libraries = LibraryManager()
    libraries.create(LIBRARY, title=LIBRARY_TITLE, description=DESCRIPTION)
    files = [(name, _picture(i)) for i, name in enumerate(NAMES)]
    files.append((f"{CLASS}/class-picture.png", _picture(99)))
    report = libraries.add_files(LIBRARY, files)
    assert report.added == len(files), report.skipped
    store = Store()
    images = LocalScoreEngine(libraries).generate(LocalScoreRequest(seed=1, count=1, library=LIBRARY, size=16))
    store.save(images, title=TITLE)
    plan = plan_campaign(
        "marketing-variations",
        {"product": PRODUCT},
        engine="local-score",
        name=CAMPAIGN,
        library=LIBRARY,
        size=16,
        seeds=1,
        styles=["Minimal"],
    )
    CampaignStore(store).create(plan)
    return isolated_data_dir


def _settle(page) -> None:
    page.wait_for_timeout(700)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=300_000)
    page.wait_for_timeout(500)


def _open(page, link: str) -> None:
    page.get_by_role("link", name=link).first.click()
    _settle(page)


def _check_no_script(page, dialogs: list[str], where: str) -> str:
    """No dialog, no ``__xss`` in any frame, no injected element; returns the visible text of the page."""
    assert not dialogs, f"{where}: a dialog opened: {dialogs}"
    for frame in page.frames:
        try:
            flag = frame.evaluate("() => typeof window.__xss === 'undefined' ? null : String(window.__xss)")
        except Exception:  # noqa: BLE001 - a frame that went away meanwhile ran nothing more
            continue
        assert flag is None, f"{where}: script from a stored name ran (window.__xss = {flag}) in {frame.url}"
        injected = frame.evaluate(f"() => Array.from(document.querySelectorAll({INJECTED!r})).map(e => e.outerHTML)")
        assert not injected, f"{where}: injected elements in the page: {injected}"
    return page.locator("body").inner_text()


def test_names_with_html_and_script_are_shown_as_text(page, studio):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(studio)
    page.get_by_text("Start in three steps").wait_for()

    # Libraries: the title in the expander header, the description and the class name inside
    _open(page, "Libraries")
    page.get_by_text("spring", exact=False).count()  # nothing to wait for: the list is drawn at once
    header = page.locator('[data-testid="stExpander"] summary').filter(has_text="Brand")
    header.first.click()
    _settle(page)
    text = _check_no_script(page, dialogs, "Libraries")
    shot(page, "xss_01_libraries")
    assert "Brand <img src=x onerror=window.__xss=1> **bold**" in text
    assert "About <script>window.__xss=1</script> [click](javascript:window.__xss=1)" in text
    assert CLASS in text

    # Generate: the library title in the picker
    _open(page, "Generate")
    page.get_by_text("Estimated time").wait_for()
    _check_no_script(page, dialogs, "Generate")

    # Mosaic view: the library pictures this image is made of, by name
    _open(page, "Mosaic view")
    page.get_by_text("Where it comes from").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.locator(".js-plotly-plot").first.hover()  # the hover label names the library picture under the mouse
    page.wait_for_timeout(500)
    text = _check_no_script(page, dialogs, "Mosaic view")
    shot(page, "xss_02_mosaic")
    shown = [name for name in [*NAMES, "class-picture.png"] if name in text]
    assert shown, "no library picture name is shown as text on the Mosaic view:\n" + text

    # Originality check of that image against the library: the pictures it borrows from, by name
    _open(page, "Originality check")
    text = _check_no_script(page, dialogs, "Originality check")
    # the image's title, as text: shortened in the picker (it fits a phone), whole in the caption under it
    assert page.get_by_role("combobox", name="Image").input_value().startswith(TITLE[:15])
    assert TITLE in text
    page.get_by_role("button", name="Check originality").click()
    page.get_by_text("Library pictures it borrows from").wait_for(timeout=600_000)
    _settle(page)
    text = _check_no_script(page, dialogs, "Originality check result")
    shot(page, "xss_03_analyze")
    assert "Brand <img src=x onerror=window.__xss=1> **bold**" in text
    assert any(name in text for name in [*NAMES, "class-picture.png"]) or "No piece of this image" in text

    # an uploaded copy of one library picture: a near copy, named in the verdict and the summary
    page.get_by_text("A picture from my computer").click()
    _settle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "copy.png", "mimeType": "image/png", "buffer": _picture(0)}]
    )
    _settle(page)
    page.get_by_role("button", name="Check originality").click()
    page.get_by_text("Library pictures it borrows from").wait_for(timeout=600_000)
    _settle(page)
    text = _check_no_script(page, dialogs, "Originality check of a near copy")
    shot(page, "xss_04_near_copy")
    assert NAMES[0] in text

    # Gallery
    _open(page, "Gallery")
    page.get_by_text(re.compile(r"\d+ images? saved")).first.wait_for()
    _check_no_script(page, dialogs, "Gallery")

    # Campaigns: the saved campaign, its name and brief
    _open(page, "Campaigns")
    page.get_by_text("2 · Results & export").click()
    _settle(page)
    page.get_by_text("The brief and how it was made").click()
    _settle(page)
    text = _check_no_script(page, dialogs, "Campaigns")
    shot(page, "xss_05_campaigns")
    assert CAMPAIGN in text
    assert PRODUCT in text
