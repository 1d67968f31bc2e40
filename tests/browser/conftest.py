"""Fixtures of the browser tests: the studio served from the test's data folder, and a Chromium page."""

from __future__ import annotations

import pytest

from tests.browser.studio import chromium_page, running_studio
from tests.signin import sign_in_browser


@pytest.fixture
def studio_data(isolated_data_dir):
    """The data folder the studio starts with; a test module overrides this to fill it before the server starts."""
    return isolated_data_dir


@pytest.fixture
def studio(studio_data, isolated_data_dir):
    with running_studio(isolated_data_dir) as url:
        yield url


@pytest.fixture
def page(studio):
    """A Chromium page signed in as an admin of the default workspace (its session cookie is set)."""
    with chromium_page() as page:
        sign_in_browser(page, studio)
        yield page
