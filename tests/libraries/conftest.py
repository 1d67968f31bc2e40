"""Fixtures for the reference-library tests. Every test runs against a temporary data directory."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from core.libraries import LibraryManager


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point MOSAIC_DATA_DIR at a fresh folder so no test touches the real data directory."""
    path = tmp_path / "mosaic-data"
    monkeypatch.setenv("MOSAIC_DATA_DIR", str(path))
    return path


@pytest.fixture
def manager(data_dir: Path) -> LibraryManager:
    return LibraryManager()


@pytest.fixture(scope="session")
def built_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A libraries folder with the three built-ins made once for the whole session (read-only use)."""
    root = tmp_path_factory.mktemp("builtins") / "libraries"
    manager = LibraryManager(root=root)
    for name in ("photos", "faces", "digits"):
        manager.ensure(name)
    return root


@pytest.fixture
def builtins(built_root: Path) -> LibraryManager:
    return LibraryManager(root=built_root)


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture
def png() -> Callable[..., bytes]:
    """``png(color=(200, 30, 30), size=(20, 16), mode="RGB")`` -> PNG bytes."""

    def make(color=(200, 30, 30), size=(20, 16), mode="RGB") -> bytes:
        return _encode(Image.new(mode, size, color), "PNG")

    return make


@pytest.fixture
def jpeg() -> Callable[..., bytes]:
    """``jpeg(color=(30, 200, 30), size=(24, 24))`` -> JPEG bytes (a gradient, so it is not trivial)."""

    def make(color=(30, 200, 30), size=(24, 24)) -> bytes:
        image = Image.linear_gradient("L").resize(size).convert("RGB")
        image = Image.blend(image, Image.new("RGB", size, color), 0.5)
        return _encode(image, "JPEG", quality=90)

    return make


@pytest.fixture
def make_zip() -> Callable[[dict[str, bytes]], bytes]:
    """``make_zip({"shoes/a.png": data, ...})`` -> zip bytes (names written verbatim, even unsafe ones)."""

    def make(entries: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries.items():
                archive.writestr(zipfile.ZipInfo(name), data)
        return buffer.getvalue()

    return make
