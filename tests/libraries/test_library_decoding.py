"""Decoding an import's pictures away from the importing thread (issue 18, items 1 and 3):
``core.libraries.decoding.prepare_picture`` and ``core.runners.picture_runner`` — on threads of this
process, in the caller's thread, or as Ray tasks — make the same library, in the source's order."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core import runners
from core.libraries import LibraryManager
from core.libraries.decoding import PictureTask, prepare_picture
from core.libraries.sources import ImportCandidate


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _folder(root, count: int):
    """``count`` pictures in two labelled sub-folders, one of them broken, some gray saved as RGB."""
    rng = np.random.default_rng(0)
    for i in range(count):
        label = "shoes" if i % 3 else "bags"
        (root / label).mkdir(parents=True, exist_ok=True)
        if i == 7:
            (root / label / f"p{i:03d}.png").write_bytes(b"\x89PNG not really")
            continue
        array = rng.integers(0, 256, size=(20 + i % 5, 24, 3), dtype=np.uint8)
        if i % 4 == 0:
            array[..., 1] = array[..., 2] = array[..., 0]
        (root / label / f"p{i:03d}.png").write_bytes(_png(array))
    return root


def _library(manager: LibraryManager, name: str) -> list[tuple]:
    """What the library holds, in its order: source, label, the stored picture's mode and pixels."""
    out = []
    for i, item in enumerate(manager.items(name)):
        image = manager.item_image(name, i)
        out.append((item["source"], item["label"], image.mode, np.asarray(image).tobytes()))
    return out


def test_prepare_picture_decodes_checks_and_encodes() -> None:
    gray = np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8, 1), 3, axis=2)
    made = prepare_picture(PictureTask(5, ImportCandidate("g.png", label="a", data=_png(gray)), max_side=4096))
    assert made.number == 5 and made.name == "g.png" and made.label == "a" and made.skip_reason is None
    assert made.channels == 1  # a gray photo saved as RGB is kept as gray
    with Image.open(io.BytesIO(made.png)) as stored:
        assert stored.mode == "L" and np.array_equal(np.asarray(stored), gray[..., 0])
    with Image.open(io.BytesIO(made.thumb)) as thumb:
        assert max(thumb.size) == 96  # a tiny picture's preview is enlarged with crisp pixels
    broken = prepare_picture(PictureTask(6, ImportCandidate("b.png", data=b"\x89PNG nope"), max_side=4096))
    assert broken.png is None and broken.skip_reason
    refused = prepare_picture(PictureTask(7, ImportCandidate("c.png", skip_reason="not a regular file"), 4096))
    assert refused.skip_reason == "not a regular file" and refused.png is None


def test_the_thread_runner_keeps_order_and_stops_its_threads() -> None:
    runner = runners.ThreadRunner(workers=3)
    assert list(runner.map(lambda x: x * x, range(50))) == [x * x for x in range(50)]
    pulled: list[int] = []

    def items():
        for x in range(1000):
            pulled.append(x)
            yield x

    results = runner.map(lambda x: x, items())
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    results.close()
    assert len(pulled) < 20  # only a few pieces run ahead of the caller

    def boom(x: int) -> int:
        if x == 4:
            raise ValueError("piece 4")
        return x

    with pytest.raises(ValueError, match="piece 4"):
        list(runner.map(boom, range(10)))


def test_picture_runner_choice(monkeypatch) -> None:
    monkeypatch.delenv("MOSAIC_RAY_ADDRESS", raising=False)
    assert runners.picture_runner(10).name == "local"
    assert runners.picture_runner(runners.THREADS_FROM).name == "threads"
    assert runners.picture_runner(0).name == "threads"  # a stream of unknown length


def test_an_import_on_threads_makes_the_library_an_import_in_one_thread_makes(
    isolated_data_dir, tmp_path, monkeypatch
) -> None:
    folder = _folder(tmp_path / "pictures", 90)
    manager = LibraryManager()
    used: list[str] = []
    choose = {"runner": runners.picture_runner}

    def watched(expected: int = 0):
        runner = choose["runner"](expected)
        used.append(runner.name)
        return runner

    monkeypatch.setattr("core.libraries.manager.picture_runner", watched)
    threaded = manager.add_paths("threaded", [folder])
    choose["runner"] = lambda expected: runners.LocalRunner()
    single = manager.add_paths("single", [folder])
    assert used == ["threads", "local"]
    assert threaded.added == single.added == 89
    assert [name for name, _ in threaded.skipped] == [name for name, _ in single.skipped] == ["shoes/p007.png"]
    mine = _library(manager, "threaded")
    assert mine == _library(manager, "single")
    assert [source for source, *_ in mine] == sorted(source for source, *_ in mine)  # the folder's order
    assert {mode for _, _, mode, _ in mine} == {"L", "RGB"}


def test_an_import_on_ray_makes_the_library_a_local_import_makes(
    isolated_data_dir, tmp_path, monkeypatch, ray_cluster
) -> None:
    """Issue 18, item 3: with ``MOSAIC_RAY_ADDRESS`` set the pictures are decoded by Ray tasks."""
    folder = _folder(tmp_path / "pictures", 30)
    manager = LibraryManager()
    manager.add_paths("here", [folder])
    used: list[str] = []
    real = runners.RayRunner.map

    def watched(self, fn, items):
        used.append(fn.__name__)
        return real(self, fn, items)

    monkeypatch.setattr(runners.RayRunner, "map", watched)
    monkeypatch.setenv("MOSAIC_RAY_ADDRESS", ray_cluster)
    report = manager.add_paths("there", [folder])
    assert used == ["prepare_picture"] and report.added == 29
    assert _library(manager, "there") == _library(manager, "here")
