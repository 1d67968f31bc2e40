"""Tensor caches: written once per (size, channels), invalidated when the items change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import BadInputError
from core.libraries import LibraryManager
from core.libraries.tensors import square_array


def _cache_files(data_dir: Path, name: str) -> list[str]:
    return sorted(path.name for path in (data_dir / "libraries" / name / "cache").glob("*.npy"))


def test_cache_written_and_reused(manager: LibraryManager, png, data_dir: Path, monkeypatch) -> None:
    manager.create_from_files("c", [("a.png", png()), ("b.png", png((0, 0, 255)))])
    first = manager.load("c", 16)
    files = _cache_files(data_dir, "c")
    assert len(files) == 1 and files[0].startswith("16px-3ch-")
    array = np.load(data_dir / "libraries" / "c" / "cache" / files[0], allow_pickle=False)
    assert array.dtype == np.uint8 and array.shape == (2, 3, 16, 16)

    from core.libraries.storage import LibraryStorage

    def no_reads(*args, **kwargs):
        raise AssertionError("images should come from the cache")

    monkeypatch.setattr(LibraryStorage, "read_image", no_reads)
    again = manager.load("c", 16)
    assert torch.equal(first.images, again.images)
    monkeypatch.undo()  # another size/channel count is a separate cache
    manager.load("c", 8, channels=1)
    assert len(_cache_files(data_dir, "c")) == 2


def test_cache_invalidated_after_adding(manager: LibraryManager, png, data_dir: Path) -> None:
    manager.create_from_files("grow", [("a.png", png((255, 0, 0)))])
    assert manager.load("grow", 8).images.shape[0] == 1
    stale = _cache_files(data_dir, "grow")
    manager.add_files("grow", [("b.png", png((0, 255, 0)))])
    assert _cache_files(data_dir, "grow") == stale  # kept until the next read reuses its rows
    batch = manager.load("grow", 8)
    assert batch.images.shape[0] == 2
    assert len(_cache_files(data_dir, "grow")) == 1 and _cache_files(data_dir, "grow") != stale
    assert batch.images[1, 1].mean() > 0.9  # the new green image is really there
    manager.remove_items("grow", [batch.item_ids[0]])
    batch = manager.load("grow", 8)
    assert batch.images.shape[0] == 1 and batch.images[0, 1].mean() > 0.9


def test_damaged_cache_is_rebuilt(manager: LibraryManager, png, data_dir: Path) -> None:
    manager.create_from_files("dmg", [("a.png", png())])
    expected = manager.load("dmg", 8).images
    cache = data_dir / "libraries" / "dmg" / "cache" / _cache_files(data_dir, "dmg")[0]
    cache.write_bytes(b"garbage")
    assert torch.equal(manager.load("dmg", 8).images, expected)


def test_load_order_matches_items(manager: LibraryManager, png) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    manager.create_from_files("order", [(f"{i}.png", png(c)) for i, c in enumerate(colours)])
    batch = manager.load("order", 4)
    assert batch.item_ids == [item["id"] for item in manager.items("order")]
    for index, colour in enumerate(colours):
        stored = np.asarray(manager.item_image("order", index))[0, 0]
        assert tuple(stored) == colour
        expected = torch.tensor(colour, dtype=torch.float32) / 127.5 - 1
        assert torch.allclose(batch.images[index, :, 0, 0], expected)


def test_square_array_centre_crops() -> None:
    image = Image.new("RGB", (30, 10), (0, 0, 0))
    image.paste((255, 255, 255), (10, 0, 20, 10))  # white centre square, black sides
    array = square_array(image, 10, 3)
    assert array.shape == (3, 10, 10) and array.min() == 255
    assert square_array(image, 5, 1).shape == (1, 5, 5)


def test_load_arguments_checked(manager: LibraryManager, png) -> None:
    manager.create_from_files("args", [("a.png", png())])
    for size in (0, -3, 5000, 2.5, "32", True):
        with pytest.raises(BadInputError, match="working size"):
            manager.load("args", size)
    with pytest.raises(BadInputError, match="Channels"):
        manager.load("args", 8, channels=2)


def test_pixels_are_the_loaded_pictures_read_through_a_memory_map(manager: LibraryManager, png, data_dir) -> None:
    manager.create_from_files("px", [("a.png", png((255, 0, 0))), ("b.png", png((0, 0, 255)))])
    lib = manager.pixels("px", 16)
    assert isinstance(lib.pixels, np.memmap) and not lib.pixels.flags.writeable
    assert lib.pixels.dtype == np.uint8 and lib.pixels.shape == (2, 3, 16, 16) and lib.channels == 3
    assert lib.item_ids == [item["id"] for item in manager.items("px")]
    loaded = manager.load("px", 16)
    assert torch.equal(torch.from_numpy(np.array(lib.pixels)).float() / 127.5 - 1.0, loaded.images)
    assert manager.pixels("px", 8, channels=1).pixels.shape == (2, 1, 8, 8)
    for size in (0, 5000, "32", True):
        with pytest.raises(BadInputError, match="working size"):
            manager.pixels("px", size)
    with pytest.raises(BadInputError, match="Channels"):
        manager.pixels("px", 8, channels=2)


def test_pixels_have_no_memory_limit_but_whole_tensors_do(manager: LibraryManager, png, monkeypatch) -> None:
    from core.errors import ResourceError

    manager.create_from_files("limit", [("a.png", png())])
    monkeypatch.setattr("core.libraries.manager.MAX_TENSOR_BYTES", 1)
    assert manager.pixels("limit", 32).pixels.shape == (1, 3, 32, 32)
    with pytest.raises(ResourceError, match="smaller picture size or a smaller library"):
        manager.load("limit", 32)


def test_pixels_without_a_writable_cache_folder_are_read_into_memory(manager: LibraryManager, png, data_dir) -> None:
    manager.create_from_files("ro", [("a.png", png((0, 255, 0)))])
    (data_dir / "libraries" / "ro" / "cache").write_bytes(b"a file where the cache folder goes")
    lib = manager.pixels("ro", 8)
    assert not isinstance(lib.pixels, np.memmap) and lib.pixels.shape == (1, 3, 8, 8)
    assert lib.pixels[0, 1].mean() > 250  # the green picture


def test_after_adding_or_removing_pictures_only_new_ones_are_read_again(
    manager: LibraryManager, png, data_dir: Path, monkeypatch
) -> None:
    from core.libraries.storage import LibraryStorage

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    manager.create_from_files("grow", [(f"{i}.png", png(c)) for i, c in enumerate(colours[:3])])
    first = np.array(manager.pixels("grow", 16).pixels)
    reads: list[str] = []
    real_read = LibraryStorage.read_image

    def counted(self, item):
        reads.append(item.id)
        return real_read(self, item)

    monkeypatch.setattr(LibraryStorage, "read_image", counted)
    manager.add_files("grow", [("3.png", png(colours[3])), ("4.png", png(colours[4]))])
    reads.clear()
    grown = manager.pixels("grow", 16)
    assert reads == grown.item_ids[3:]  # the three pictures read before are taken from the earlier cache
    np.testing.assert_array_equal(grown.pixels[:3], first)
    assert grown.pixels[4, 1].min() == 255 and grown.pixels[4, 0].max() == 0  # the new cyan picture
    assert len(_cache_files(data_dir, "grow")) == 1  # the earlier revision's cache is gone once reused

    manager.remove_items("grow", [grown.item_ids[1]])
    reads.clear()
    shrunk = manager.pixels("grow", 16)
    assert reads == [] and shrunk.pixels.shape[0] == 4
    np.testing.assert_array_equal(shrunk.pixels, np.array(grown.pixels)[[0, 2, 3, 4]])

    # the same as reading every picture afresh
    for path in (data_dir / "libraries" / "grow" / "cache").iterdir():
        path.unlink()
    monkeypatch.undo()
    np.testing.assert_array_equal(manager.pixels("grow", 16).pixels, shrunk.pixels)
