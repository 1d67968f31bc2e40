"""Start the studio in a subprocess and drive it with Debian's headless Chromium (used by the browser tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_studio(
    data_dir: Path,
    script: str | Path = "app.py",
    address: str | None = "127.0.0.1",
    workers: int = 1,
    port: int | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[str]:
    """``streamlit run app.py`` (or ``script``) from the repository on a free port with ``data_dir`` as the data
    folder; yields its URL on 127.0.0.1. ``address=None`` leaves the address to ``.streamlit/config.toml``."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `bash scripts/test.sh`, which installs it.")
    port = port or free_port()
    env = dict(os.environ, MOSAIC_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", MOSAIC_WORKERS=str(workers))
    log_path = data_dir.parent / "streamlit.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(script),
            "--server.port",
            str(port),
            *(["--server.address", address] if address else []),
            "--server.headless",
            "true",
            *extra_args,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("streamlit did not start: " + log_path.read_text())
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


@contextmanager
def chromium_page() -> Iterator:
    """A fresh headless Chromium page (1400×1000)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(120_000)
        try:
            yield page
        finally:
            browser.close()


@contextmanager
def chromium_pages(count: int) -> Iterator[list]:
    """``count`` pages of one headless Chromium, each in a context of its own (own cookies: own person)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        pages = []
        for _ in range(count):
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            pages.append(page)
        try:
            yield pages
        finally:
            browser.close()


def shot(page, name: str) -> Path:
    """A full-page screenshot in ``test-artifacts/<name>.png``."""
    path = ARTIFACTS / f"{name}.png"
    page.wait_for_timeout(800)
    page.evaluate("document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    page.screenshot(path=str(path), full_page=True)
    return path


def settle(page) -> None:
    """Wait until Streamlit has finished rerunning the script."""
    page.wait_for_timeout(700)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)


def slider_to_minimum(page, label: str) -> None:
    slider = page.get_by_role("slider", name=label) if page.get_by_role("slider", name=label).count() else None
    if slider is None:
        slider = page.get_by_text(label, exact=True).locator("xpath=ancestor::div[@data-testid]").first.get_by_role(
            "slider"
        )
    slider.focus()
    slider.press("Home")
    page.wait_for_timeout(800)


def fill_small_campaign(page, product: str = "water bottle", name: str | None = None) -> None:
    """On the Campaigns page: the A/B ad pair for ``product``, offline engine, smallest images, fewest steps."""
    page.get_by_role("link", name="Campaigns").first.click()
    page.get_by_role("combobox", name="Template").click()
    page.get_by_role("option", name="A/B ad pair").first.click()
    page.get_by_text("Two contrasting ad images").first.wait_for()
    settle(page)
    fields = [("Product or service", product), ("Main benefit", "keeps drinks cold")]
    if name:
        fields.append(("Campaign name (optional)", name))
    for label, value in fields:
        box = page.get_by_role("textbox", name=label)
        for _attempt in range(5):  # a rerun still in flight can redraw the box and drop the typing
            box.fill(value)
            box.press("Tab")
            settle(page)
            if box.input_value() == value:
                break
        assert box.input_value() == value
    page.get_by_text("Offline: assemble pictures").click()
    slider_to_minimum(page, "Image size (pixels)")
    page.get_by_text("Advanced").first.click()
    slider_to_minimum(page, "Steps (more = slower, a little cleaner)")
    analyse = page.get_by_role("checkbox", name="Check originality and copy")
    if analyse.count() and analyse.is_checked():
        page.get_by_text("Check originality and copy risk of each image").click()
        page.wait_for_timeout(800)
    page.get_by_text("Check the list, then press").wait_for()
