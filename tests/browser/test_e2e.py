"""End to end in real headless Chromium: generate with the defaults, open the mosaic view.

Screenshots are saved in ``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.studio import fill_small_campaign, settle, shot

# the studio and page fixtures are in tests/browser/conftest.py

pytestmark = pytest.mark.browser


def _shot(page, name: str) -> Path:
    return shot(page, name)


def test_generate_with_defaults_then_open_mosaic(page, studio):
    page.goto(studio)
    page.get_by_text("Start in three steps").wait_for()
    _shot(page, "01_home")

    page.get_by_role("link", name="Generate").first.click()
    page.get_by_role("button", name="Generate").wait_for()
    page.get_by_text("Estimated time").wait_for()
    _shot(page, "02_generate")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("saved to the gallery").wait_for(timeout=1_200_000)
    _shot(page, "03_results")

    page.get_by_role("button", name="Open mosaic").first.click()
    page.get_by_text("Where it comes from").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    assert _shot(page, "04_mosaic").stat().st_size > 10_000

    page.get_by_role("link", name="Gallery").first.click()
    page.get_by_text(re.compile(r"\d+ images? saved")).first.wait_for()
    _shot(page, "05_gallery")


def _fill_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label)
    for _attempt in range(5):  # on a busy machine a rerun still in flight can redraw the box and drop the typing
        box.fill(str(value))
        box.press("Enter")
        settle(page)
        if box.input_value() == str(value):
            return
    assert box.input_value() == str(value)


def test_generate_with_a_tiny_stable_diffusion_pipeline(page, studio, isolated_data_dir):
    from tests.engines.sd.tiny import build_tiny_sd15

    build_tiny_sd15(isolated_data_dir / "models" / "tiny-sd15")
    page.goto(studio)
    page.get_by_role("link", name="Generate").first.click()
    page.get_by_role("combobox", name="Engine").click()
    page.get_by_role("option", name="Stable Diffusion").first.click()
    page.get_by_label("Describe the image").wait_for()
    page.get_by_label("Describe the image").fill("a red sneaker on a pastel background")
    page.get_by_label("Describe the image").press("Tab")
    size = page.get_by_role("combobox", name="Size", exact=True)
    size.click()
    page.keyboard.type("Custom")
    page.keyboard.press("Enter")
    _fill_number(page, "Width (pixels)", 64)
    _fill_number(page, "Height (pixels)", 64)
    page.get_by_text("Advanced", exact=True).click()
    _fill_number(page, "Steps (0 = recommended)", 2)
    _shot(page, "06_sd_settings")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("saved to the gallery").wait_for(timeout=300_000)
    _shot(page, "07_sd_results")
    from core.store import Store

    records = Store().list()
    assert [r.engine for r in records] == ["sd"] and records[0].width == 64
    assert records[0].params["prompt"] == "a red sneaker on a pastel background"


def test_make_and_export_a_small_campaign(page, studio):
    import io
    import zipfile

    page.goto(studio)
    try:
        fill_small_campaign(page)
    finally:
        _shot(page, "08_campaign_brief")
    page.get_by_role("button", name="Generate campaign").click()
    export = page.get_by_role("button", name="Download ZIP")
    export.wait_for(timeout=600_000)
    _shot(page, "09_campaign_results")
    with page.expect_download() as info:
        export.click()
    data = open(info.value.path(), "rb").read()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        manifest = archive.read("manifest.csv").decode()
    pngs = [n for n in names if n.endswith(".png")]
    assert len(pngs) >= 2 and "contact-sheet.html" in names
    assert all(name.split("/")[-1] in manifest for name in pngs)
    assert len(manifest.strip().splitlines()) == len(pngs) + 1  # header + one row per image
