"""Shared analyzer fixtures: one photo library and one warm analyzer per module (indexes are reused)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from analyzer_synth import make_library  # noqa: E402

from core.analyzer import Analyzer  # noqa: E402
from core.libraries import LibraryManager  # noqa: E402


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """(analyzer, library arrays) on a library made once per module, with its own index folder."""
    root = tmp_path_factory.mktemp("analyzer")
    manager = LibraryManager(root=root / "libraries")
    arrays = make_library(manager, "shots")
    analyzer = Analyzer(manager, index_root=root / "indexes")
    analyzer.index("shots")
    return analyzer, arrays
