"""The server as configured in ``.streamlit/config.toml``: reachable from this computer only, and an error in a
page does not send its traceback (file paths, code, values) to the browser."""

from __future__ import annotations

import socket

import pytest

from tests.browser.studio import chromium_page, running_studio, shot

pytestmark = pytest.mark.browser

SECRET = "/srv/secret-path/credentials.txt"
FAILING_PAGE = f'''
import streamlit as st

st.title("A page that fails")
def load_private_settings():
    raise RuntimeError("cannot open {SECRET}")
load_private_settings()
'''


def _other_address() -> str | None:
    """An IPv4 address of this computer other than the loopback, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = sock.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_an_error_in_a_page_shows_no_traceback_and_only_localhost_can_connect(tmp_path, isolated_data_dir):
    from tests.browser.studio import ROOT

    script = tmp_path / "failing_page.py"
    script.write_text(FAILING_PAGE)
    isolated_data_dir.mkdir(parents=True, exist_ok=True)
    with running_studio(isolated_data_dir, script=script, address=None) as url, chromium_page() as page:
        page.goto(url)
        page.get_by_text("A page that fails").wait_for()
        page.locator('[data-testid="stException"]').first.wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        text = page.locator("body").inner_text()
        html = page.content()
        shot(page, "server_error_details")
        assert "This app has encountered an error" in text
        assert SECRET not in text and SECRET not in html, "the error message reached the browser"
        assert "Traceback" not in text and "load_private_settings" not in html, "the traceback reached the browser"
        assert "RuntimeError" not in text, "the error type reached the browser"

        port = int(url.rsplit(":", 1)[1])
        other = _other_address()
        if other is not None:
            with socket.socket() as sock:
                sock.settimeout(3)
                assert sock.connect_ex((other, port)) != 0, f"the studio answers on {other}: it must bind to localhost"
    assert (ROOT / ".streamlit" / "config.toml").is_file()
