"""End to end in real headless Chromium: generate with the defaults, open the mosaic view.

Screenshots are saved in ``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.browser

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def studio(isolated_data_dir):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `bash scripts/test.sh`, which installs it.")
    port = _free_port()
    env = dict(os.environ, MOSAIC_DATA_DIR=str(isolated_data_dir), HF_HUB_OFFLINE="1")
    log = open(isolated_data_dir.parent / "streamlit.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + (isolated_data_dir.parent / "streamlit.log").read_text())
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture
def page(studio):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(120_000)
        yield page
        browser.close()


def _shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.wait_for_timeout(800)
    page.screenshot(path=str(path), full_page=True)
    return path


def test_generate_with_defaults_then_open_mosaic(page, studio):
    page.goto(studio)
    page.get_by_text("Start in three steps").wait_for()
    _shot(page, "01_home")

    page.get_by_role("link", name="Generate").first.click()
    page.get_by_role("button", name="Generate").wait_for()
    page.get_by_text("Estimated time").wait_for()
    _shot(page, "02_generate")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Results").wait_for(timeout=300_000)
    page.get_by_text("saved to the gallery").wait_for()
    _shot(page, "03_results")

    page.get_by_role("button", name="Open mosaic").first.click()
    page.get_by_text("Where it comes from").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    assert _shot(page, "04_mosaic").stat().st_size > 10_000

    page.get_by_role("link", name="Gallery").first.click()
    page.get_by_text("image(s) saved").wait_for()
    _shot(page, "05_gallery")
