"""``.streamlit/config.toml``: the studio serves this computer only and keeps tracebacks out of browsers."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))


def test_server_binds_to_localhost_by_default():
    assert _config()["server"]["address"] in ("127.0.0.1", "localhost")


def test_browsers_get_no_error_details():
    value = _config()["client"]["showErrorDetails"]
    assert value == "none", "tracebacks, messages or error types would reach the browser"


def test_streamlit_reads_these_values():
    """The keys are spelled as Streamlit expects (a typo would be silently ignored)."""
    from streamlit import config

    options = config._config_options_template
    assert "server.address" in options and "client.showErrorDetails" in options
    assert config.ShowErrorDetailsConfigOptions.NONE == _config()["client"]["showErrorDetails"]


def test_readme_says_how_to_open_the_studio_to_a_network():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "--server.address 0.0.0.0" in readme
    assert "no sign-in" in readme
    assert "MOSAIC_ALLOWED_FOLDERS" in readme
