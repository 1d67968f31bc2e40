"""Library pictures are named the way people named them (issue 19): one function, used everywhere."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

from core.libraries import LibraryManager
from core.libraries.names import position_words, source_name, source_names

INTERNAL = ("skimage", "lfw_subset", "sklearn", "load_digits", "crop x=", "[face]")


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 12), color=(value, 255 - value, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_built_in_faces_get_short_human_titles():
    manager = LibraryManager()
    manager.ensure("faces")
    items = manager.items("faces")
    names = source_names(items, "faces")
    # the 53rd picture of the data set (index 52) is a face, the last 100 are backgrounds
    by_id = {item["id"]: names[i] for i, item in enumerate(items)}
    assert by_id["face-052"] == "Faces #52"
    assert by_id["non-face-152"] == "Backgrounds #152"
    assert len(set(names.values())) == len(items) == 200
    assert not [name for name in names.values() if any(term in name for term in INTERNAL)]


def test_built_in_photos_and_digits_read_as_words_and_numbers():
    photo = {"id": "coffee-003", "label": "coffee", "source": "skimage.data.coffee() crop x=0 y=0 size=200"}
    assert source_name(photo, "photos") == "Coffee cup #3"
    assert source_name({"id": "chelsea-000", "label": "chelsea"}, "photos") == "Cat #0"
    assert source_name({"id": "digit-0012", "label": "3"}, "digits") == "Digits #12 (a 3)"


def test_uploaded_pictures_keep_their_file_names_without_folders_or_take_their_title():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("spring/boots/red-boot.png", _png(10))
        zipped.writestr("spring/boots/blue-boot.png", _png(60))
        zipped.writestr("spring/sandals/red-boot.png", _png(120))  # the same file name in another folder
        zipped.writestr("spring/sandals/beach day.png", _png(200))
    manager = LibraryManager()
    report = manager.create_from_zip("spring-catalogue", archive.getvalue(), title="Spring catalogue")
    assert report.added == 4
    items = manager.items("spring-catalogue")
    names = source_names(items, "spring-catalogue")
    shown = sorted(names.values())
    assert shown == ["beach day.png", "blue-boot.png", "red-boot.png (boots)", "red-boot.png (sandals)"]
    assert not any("/" in name or "spring" in name for name in shown)
    # a picture with a title is shown by its title; one with neither title nor file name by its place
    assert source_name({**items[0], "title": "  Hero   shot "}, "spring-catalogue") == "Hero shot"
    assert source_name({"id": "abc", "source": "", "index": 3}, "spring-catalogue") == "Picture 4"


def test_the_mosaic_and_the_verdict_use_the_same_names(tmp_path):
    from core.analyzer.verdict import verdict_from_exact
    from core.mosaic import build_mosaic, hover_text, top_sources

    manager = LibraryManager()
    folder = tmp_path / "pics"
    (folder / "shoes").mkdir(parents=True)
    for i, name in enumerate(["left.png", "right.png"]):
        Image.open(io.BytesIO(_png(40 + 100 * i))).save(folder / "shoes" / name)
    manager.create("shoes-lib")
    manager.add_folder("shoes-lib", folder)
    items = manager.items("shoes-lib")
    sources = np.zeros((6, 6, 3), np.int32)
    sources[:, 3:, 0] = 1
    sources[..., 1] = 11  # the bottom rows of a 12 px picture
    sources[..., 2] = 0  # its left edge
    arrays = {
        "sources": sources,
        "step_sources": sources[None],
        "entropy": np.zeros((6, 6), np.float32),
        "step_x0": np.zeros((1, 3, 6, 6), np.float16),
        "patch_sizes": np.array([3]),
        "used_indices": np.array([0, 1], np.int32),
        "used_item_ids": np.array([items[0]["id"], items[1]["id"]]),
    }
    mosaic = build_mosaic(arrays, "shoes-lib", manager)
    assert set(mosaic.names.values()) == {"left.png", "right.png"}
    assert {s.name for s in top_sources(mosaic)} == {"left.png", "right.png"}
    verdict = verdict_from_exact(mosaic.sources, mosaic.names, 2)
    assert verdict.top_source in {"left.png", "right.png"}
    text = hover_text(mosaic, mosaic.sources[0, 0])
    assert mosaic.names[int(mosaic.sources[0, 0, 0])] in text and "bottom left" in text
    assert "patch centre" not in text and "(11, 0)" not in text


def test_position_words_name_the_nine_parts_of_a_picture():
    assert [position_words(y, x, 12, 12) for y, x in [(0, 0), (0, 6), (0, 11)]] == ["top left", "top", "top right"]
    assert [position_words(y, x, 12, 12) for y, x in [(6, 0), (6, 6), (6, 11)]] == ["left", "middle", "right"]
    assert position_words(11, 11, 12, 12) == "bottom right" and position_words(11, 5, 12, 12) == "bottom"
