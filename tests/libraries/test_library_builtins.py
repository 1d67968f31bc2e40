"""Built-in libraries: made lazily and offline, right shapes, labels and descriptions."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import BadInputError
from core.libraries import BUILTIN_LIBRARIES, LibraryManager
from core.libraries.builtins import PHOTO_NAMES


def test_builtins_listed_first_and_not_built_until_used(manager: LibraryManager, data_dir: Path) -> None:
    manager.create("mine")
    infos = manager.list()
    assert [info.name for info in infos] == ["photos", "faces", "digits", "mine"]
    for info in infos[:3]:
        assert info.kind == "builtin"
        assert info.built is False
        assert info.title and info.description
    assert infos[3].kind == "user" and infos[3].built is True
    assert not (data_dir / "libraries" / "digits").exists()  # listing never builds anything


def test_builtin_made_on_first_use(manager: LibraryManager, data_dir: Path) -> None:
    info = manager.ensure("faces")
    assert info.built and info.count == 200 and info.channels == 1
    folder = data_dir / "libraries" / "faces"
    assert (folder / "library.json").is_file()
    assert len(list((folder / "images").glob("*.png"))) == 200
    assert len(list((folder / "thumbs").glob("*.png"))) == 200
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".") and p.name != ".locks"]  # no staging
    assert manager.get("faces").built


def test_faces_load(builtins: LibraryManager) -> None:
    batch = builtins.load("faces", 32)
    assert batch.images.shape == (200, 1, 32, 32)
    assert batch.images.dtype == torch.float32
    assert -1.0 <= batch.images.min() and batch.images.max() <= 1.0
    assert batch.label_names == ["face", "non-face"]
    assert batch.labels.dtype == torch.int64
    assert batch.labels[:100].eq(0).all() and batch.labels[100:].eq(1).all()
    assert len(batch.item_ids) == 200 and len(set(batch.item_ids)) == 200


def test_digits_load(builtins: LibraryManager) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    batch = builtins.load("digits", 32)
    assert batch.images.shape == (1797, 1, 32, 32)
    assert batch.label_names == [str(d) for d in range(10)]
    assert batch.labels.tolist() == digits.target.tolist()
    info = builtins.get("digits")
    assert info.count == 1797 and info.channels == 1
    # Stored 8x8 image keeps the original values (0..16 scaled to 0..255).
    first = np.asarray(builtins.item_image("digits", 0))
    assert first.shape == (8, 8)
    np.testing.assert_array_equal(first, np.round(digits.images[0] * 255 / 16).astype(np.uint8))


def test_photos_load(builtins: LibraryManager) -> None:
    info = builtins.get("photos")
    assert info.channels == 3
    assert 200 <= info.count <= 600
    assert set(info.label_names) <= set(PHOTO_NAMES)
    assert len(info.label_names) >= 10
    batch = builtins.load("photos", 32)
    assert batch.images.shape == (info.count, 3, 32, 32)
    counts = Counter(batch.labels.tolist())
    assert set(counts) == set(range(len(info.label_names)))  # every photo contributes crops
    assert builtins.item_image("photos", 0).size == (64, 64)
    item = builtins.items("photos")[0]
    assert item["label"] == info.label_names[0] and "skimage.data" in item["source"]


def test_channel_conversion(builtins: LibraryManager) -> None:
    gray_as_colour = builtins.load("faces", 16, channels=3)
    assert gray_as_colour.images.shape == (200, 3, 16, 16)
    assert torch.equal(gray_as_colour.images[:, 0], gray_as_colour.images[:, 2])
    colour_as_gray = builtins.load("photos", 16, channels=1)
    assert colour_as_gray.images.shape[1] == 1


def test_thumbnail_and_items(builtins: LibraryManager) -> None:
    thumb = builtins.thumbnail("digits", 5)
    assert max(thumb.size) <= 96 and max(thumb.size) >= 64  # tiny images are enlarged
    items = builtins.items("digits")
    assert [item["index"] for item in items[:3]] == [0, 1, 2]
    assert items[3]["label"] == "3"
    with pytest.raises(BadInputError, match="no image number"):
        builtins.item_image("digits", 1797)


def test_builtins_cannot_be_deleted_or_changed(builtins: LibraryManager, png) -> None:
    with pytest.raises(BadInputError, match="built-in.*can't be deleted.*reset"):
        builtins.delete("digits")
    with pytest.raises(BadInputError, match="built-in"):
        builtins.add_files("digits", [("a.png", png())])
    with pytest.raises(BadInputError, match="built-in"):
        builtins.remove_items("digits", ["digit-0000"])
    with pytest.raises(BadInputError, match="built-in"):
        builtins.create("faces")
    assert builtins.get("digits").count == 1797


def test_reset_rebuilds_builtin(manager: LibraryManager, data_dir: Path) -> None:
    manager.ensure("faces")
    (data_dir / "libraries" / "faces" / "images" / "face-000.png").write_bytes(b"broken")
    info = manager.reset("faces")
    assert info.built is False
    assert manager.load("faces", 8).images.shape == (200, 1, 8, 8)
    with pytest.raises(BadInputError, match="Only built-in"):
        manager.reset("someone")


def test_damaged_builtin_manifest_is_rebuilt(manager: LibraryManager, data_dir: Path) -> None:
    manager.ensure("faces")
    (data_dir / "libraries" / "faces" / "library.json").write_text("{not json")
    assert manager.get("faces").built is False
    assert manager.ensure("faces").count == 200


def test_concurrent_first_use_builds_once(manager: LibraryManager) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def use() -> None:
        try:
            results.append(LibraryManager().ensure("faces").count)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [200, 200, 200]


def test_builtin_descriptions_are_plain() -> None:
    for spec in BUILTIN_LIBRARIES.values():
        assert len(spec.description) > 60
        assert "skimage" not in spec.description and "sklearn" not in spec.description
