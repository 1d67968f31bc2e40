"""Index lifecycle and bad input: incremental updates, stale and damaged indexes, unusable images."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from analyzer_synth import library_crops, make_library, png_bytes
from PIL import Image

from core.analyzer import Analyzer, analyze_image
from core.analyzer.index import clear_cache
from core.analyzer.settings import AnalyzerSettings
from core.errors import BadInputError
from core.libraries import LibraryManager

SMALL = AnalyzerSettings(work_size=64, scales=(8, 16))


@pytest.fixture
def small(isolated_data_dir):
    manager = LibraryManager()
    arrays = make_library(manager, "mini", count=4)
    return Analyzer(manager, settings=SMALL), arrays


def _image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array)


def test_index_is_built_once_then_reused_and_progress_is_reported(small, isolated_data_dir):
    analyzer, arrays = small
    seen = []
    analyzer.analyze(_image(arrays[0]), "mini", on_progress=lambda f, m: seen.append((f, m)))
    assert seen[-1][0] == 1.0 and all(0.0 <= f <= 1.0 for f, _ in seen)
    folders = list((isolated_data_dir / "indexes" / "mini").iterdir())
    assert len(folders) == 1 and (folders[0] / "manifest.json").is_file()
    clear_cache()
    seen.clear()
    again = analyzer.analyze(_image(arrays[0]), "mini", on_progress=lambda f, m: seen.append((f, m)))
    assert again.notices == []
    # with the index ready the check itself moves the bar: many small steps after the index, in words
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    after_index = [f for f in fractions if 0.6 < f < 1.0]
    assert len(set(after_index)) >= 5, seen
    assert any("(2 of " in m for _, m in seen) and not any("patches" in m or "Index" in m for _, m in seen), seen


def test_added_images_are_appended_and_removed_ones_trigger_a_rebuild(small):
    analyzer, arrays = small
    analyzer.index("mini")
    extra = library_crops()[10]
    analyzer.libraries.add_files("mini", [("extra.png", png_bytes(extra[1]))])
    index, notices = analyzer.index("mini")
    assert any("1 new picture" in n for n in notices) and index.count == 5
    result = analyzer.analyze(_image(extra[1]), "mini")
    assert result.near_copy.is_copy and result.near_copy.name == "extra.png"
    first = analyzer.libraries.items("mini")[0]["id"]
    analyzer.libraries.remove_items("mini", [first])
    index, notices = analyzer.index("mini")
    assert any("1 picture left the library" in n for n in notices) and index.count == 4 and first not in index.item_ids


@pytest.mark.parametrize("damage", ["manifest", "array", "faiss-like", "delete"])
def test_damaged_index_is_rebuilt_with_a_notice(small, damage):
    analyzer, arrays = small
    index, _ = analyzer.index("mini")
    folder = index.directory
    clear_cache()
    if damage == "manifest":
        (folder / "manifest.json").write_text("{not json", encoding="utf-8")
    elif damage == "array":
        path = folder / "shards" / "00000" / "pixels.npy"
        data = bytearray(path.read_bytes())
        data[-10:] = b"\x00" * 10
        path.write_bytes(bytes(data))
    elif damage == "faiss-like":
        (folder / "shards" / "00000" / "scale-16.vec.npy").write_bytes(b"garbage")  # 8 px: not indexed
    else:
        (folder / "shards" / "00000" / "global.npy").unlink()
    result = analyzer.analyze(_image(arrays[1]), "mini")
    assert any("prepared again" in n for n in result.notices)
    assert result.near_copy.is_copy
    _, notices = analyzer.index("mini")
    assert notices == []


def test_corrupt_and_unsupported_bytes_are_refused(small):
    analyzer, arrays = small
    buffer = io.BytesIO()
    _image(arrays[0]).save(buffer, format="PNG")
    with pytest.raises(BadInputError, match="damaged|incomplete"):
        analyzer.analyze(buffer.getvalue()[:200], "mini")
    with pytest.raises(BadInputError, match="not an image"):
        analyzer.analyze(b"%PDF-1.4 hello", "mini")
    with pytest.raises(BadInputError, match="empty"):
        analyzer.analyze(b"", "mini")
    with pytest.raises(BadInputError, match="space"):
        analyzer.analyze(_image(arrays[0]), "mini", space="fourier")
    with pytest.raises(BadInputError, match="VAE|autoencoder"):
        analyzer.analyze(_image(arrays[0]), "mini", space="latent", vae=None)


def test_empty_and_unknown_libraries_are_refused(isolated_data_dir):
    manager = LibraryManager()
    manager.create("empty")
    image = Image.new("RGB", (40, 30), (10, 20, 30))
    with pytest.raises(BadInputError, match="no images"):
        analyze_image(image, "empty", libraries=manager)
    with pytest.raises(BadInputError, match="no-such"):
        analyze_image(image, "no-such", libraries=manager)


def test_original_image_is_low_risk(small):
    analyzer, _ = small
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
    result = analyzer.analyze(Image.fromarray(noise), "mini")
    # analysed at the area of a 64 px square (80×48 -> 83×50), not shrunk to 64 px on the long side
    assert result.source_map.shape == (50, 83)
    assert result.borrowed_fraction < 0.05 and result.copy_risk == "low" and result.originality >= 90
    assert not result.near_copy.is_copy


def test_a_wide_banner_keeps_its_short_side_detail():
    from core.analyzer.features import fit_query

    banner = Image.new("RGB", (448, 172))
    assert tuple(fit_query(banner, 128, 3).shape) == (3, 79, 207)  # the area of a 128 px square
    assert tuple(fit_query(Image.new("RGB", (900, 100)), 128, 3).shape) == (3, 28, 256)  # at most 2× long
    assert tuple(fit_query(Image.new("RGB", (300, 300)), 128, 3).shape) == (3, 128, 128)
    assert tuple(fit_query(Image.new("RGB", (100, 300)), 64, 3, multiple=8).shape) == (3, 112, 40)


def test_loading_an_index_compares_sizes_and_times_and_hashes_only_what_changed(small, monkeypatch):
    """Issue 18: integrity is checked once per change, not per query; ``libraries verify`` reads everything."""
    from core.analyzer import store
    from core.analyzer.index import verify_indexes

    analyzer, arrays = small
    index, _ = analyzer.index("mini")
    folder = index.directory
    hashed: list[str] = []
    real = store.sha256_of

    def counting(path):
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(store, "sha256_of", counting)
    clear_cache()
    again, notices = analyzer.index("mini")
    assert notices == [] and again.count == index.count and hashed == []  # nothing read whole to check it
    # a file changed in place keeps its size: its time gives it away, it is hashed, and the index made again
    path = folder / "shards" / "00000" / "pixels.npy"
    data = bytearray(path.read_bytes())
    data[-10:] = bytes(255 - b for b in data[-10:])
    path.write_bytes(bytes(data))
    clear_cache()
    _, notices = analyzer.index("mini")
    assert hashed[0] == "pixels.npy" and any("prepared again" in n for n in notices)  # then written anew
    # a file touched but unchanged (copied back, say) is hashed once, then known again
    hashed.clear()
    os.utime(folder / "shards" / "00000" / "global.npy")
    clear_cache()
    _, notices = analyzer.index("mini")
    assert notices == [] and hashed == ["global.npy"]
    hashed.clear()
    clear_cache()
    analyzer.index("mini")
    assert hashed == []
    # damage that keeps size and time is found by the full check, which removes the index
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-10:] = bytes(255 - b for b in data[-10:])
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    checks = verify_indexes(analyzer.libraries, "mini")
    assert [c.problem for c in checks] == ["shards/00000/pixels.npy does not match its checksum"]
    assert not folder.exists()
    assert verify_indexes(analyzer.libraries, "mini") == []
    _, notices = analyzer.index("mini")  # made again at its next use
    assert [c.problem for c in verify_indexes(analyzer.libraries, "mini")] == [None]


def test_cli_verify_reports_pictures_and_search_data(small, capsys):
    import json

    from core.cli import main

    analyzer, _ = small
    assert main(["libraries", "verify", "mini"]) == 0
    assert "Search data: not prepared yet" in capsys.readouterr().out
    analyzer.index("mini")
    assert main(["libraries", "verify", "mini", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pictures"] == 4 and data["missing_pictures"] == []
    assert len(data["search_data"]) == 1 and data["search_data"][0]["problem"] is None
    item = analyzer.libraries.items("mini")[0]
    os.unlink(item["path"])
    assert main(["libraries", "verify", "mini"]) == 0
    assert f"1 picture missing: {item['source']}" in capsys.readouterr().out


def test_the_analyzer_is_not_bound_by_the_whole_library_memory_limit(small, monkeypatch) -> None:
    """Preparing a library reads its pictures a batch at a time from the memory-mapped picture cache, so
    the limit on a whole-library tensor (for the engines) does not apply: any number of pictures."""
    analyzer, arrays = small
    monkeypatch.setattr("core.libraries.manager.MAX_TENSOR_BYTES", 1)
    result = analyzer.analyze(_image(arrays[2]), "mini")
    assert result.near_copy.is_copy and result.near_copy.index == 2
    index, _ = analyzer.index("mini")
    assert all(isinstance(part, np.memmap) for part in index.pixels.parts) and index.count == 4


def test_indexes_of_older_versions_are_removed_once_the_new_one_is_built(small, isolated_data_dir) -> None:
    import json

    from core.analyzer.settings import INDEX_VERSION

    analyzer, arrays = small
    folder = isolated_data_dir / "indexes" / "mini"
    old, other = folder / "pixels-64-old", folder / "pixels-64-other-settings"
    for path, version in ((old, INDEX_VERSION - 1), (other, INDEX_VERSION)):
        path.mkdir(parents=True)
        (path / "global.npy").write_bytes(b"x" * 1000)
        manifest = {"files": {}, "version": version}
        (path / "manifest.json").write_text(json.dumps(manifest))
    analyzer.analyze(_image(arrays[0]), "mini")
    assert not old.exists()  # made by an older version: never read again, so removed
    assert other.exists()  # this version, other settings (another feature space, working size): kept
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 2
