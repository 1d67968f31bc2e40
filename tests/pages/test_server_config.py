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


def test_a_shared_deployment_hides_the_developer_toolbar_and_checks_forms():
    config = _config()
    assert config["client"]["toolbarMode"] == "viewer", "the Deploy button and developer menu would show"
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["maxUploadSize"] == 200, "the upload limit is kept"
    from streamlit import config as streamlit_config

    options = streamlit_config._config_options_template
    for key in ("client.toolbarMode", "server.enableXsrfProtection", "server.maxUploadSize"):
        assert key in options, key


def test_readme_says_how_to_open_the_studio_to_a_network():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "--server.address 0.0.0.0" in readme
    assert "Run it for a team" in readme
    for words in ("reverse proxy", "TLS", "backup", "MOSAIC_SESSION_IDLE_MINUTES", "users add"):
        assert words in readme, words
    assert "MOSAIC_ALLOWED_FOLDERS" in readme
