import numpy as np
from PIL import Image

from core.libraries import LibraryManager
from core.mosaic import (
    OTHER,
    build_mosaic,
    colour_indices,
    fast_draft_caption,
    mosaic_image,
    source_map_figure,
    top_sources,
)


def _library(tmp_path, n=3):
    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(n):
        Image.new("L", (8, 8), color=40 * (i + 1)).save(folder / f"p{i}.png")
    manager = LibraryManager()
    manager.create("tiny")
    manager.add_folder("tiny", folder)
    return manager


def _arrays(manager, sources):
    items = manager.items("tiny")
    used = np.unique(sources[..., 0])
    steps = np.stack([sources, sources])
    return {
        "sources": sources,
        "step_sources": steps,
        "entropy": np.zeros(sources.shape[:2], np.float32),
        "step_x0": np.zeros((2, 1) + sources.shape[:2], np.float16),
        "patch_sizes": np.array([5, 3]),
        "used_indices": used.astype(np.int32),
        "used_item_ids": np.array([items[i]["id"] for i in used]),
    }


def test_mosaic_maps_sources_and_rebuilds_the_picture(tmp_path):
    manager = _library(tmp_path)
    sources = np.zeros((4, 4, 3), np.int32)
    sources[:, :2, 0] = 0
    sources[:, 2:, 0] = 2
    sources[..., 1] = 3
    sources[..., 2] = 5
    mosaic = build_mosaic(_arrays(manager, sources), "tiny", manager)
    shares = top_sources(mosaic)
    assert [s.index for s in shares] == [0, 2] and [s.share for s in shares] == [0.5, 0.5]
    assert shares[0].locations == [(3, 5)]
    library = manager.load("tiny", 8).images.numpy()
    rebuilt = np.asarray(mosaic_image(mosaic, library))
    expected = np.asarray(manager.item_image("tiny", 0).convert("L"))[3, 5]
    assert abs(int(rebuilt[0, 0]) - int(expected)) <= 1
    assert source_map_figure(mosaic).data[0].z.shape == (4, 4)


def test_removed_library_items_show_as_removed(tmp_path):
    manager = _library(tmp_path)
    sources = np.zeros((2, 2, 3), np.int32)
    sources[0, :, 0] = 1
    arrays = _arrays(manager, sources)
    manager.remove_items("tiny", [manager.items("tiny")[1]["id"]])
    mosaic = build_mosaic(arrays, "tiny", manager)
    assert set(mosaic.sources[..., 0].ravel().tolist()) == {-1, 0}


def test_only_the_largest_sources_get_their_own_colour():
    src = np.zeros((1, 40, 3), np.int64)
    src[0, :, 0] = np.arange(40)
    src[0, :10, 0] = 99  # the largest source
    slots, order = colour_indices(src)
    assert order[0] == 99 and slots[0, 0] == 0
    assert slots.max() == OTHER


def test_fast_draft_caption_names_how_the_draft_was_made():
    assert "groups of library patches" in fast_draft_caption({"approximate": True, "approximate_method": "patch index"})
    assert "12 library pictures" in fast_draft_caption({"approximate": True, "top_k": 12})  # older drafts


def test_source_map_hover_shows_picture_names_as_text(tmp_path):
    """Plotly reads hover text as HTML (``<br>``, ``<a href>``): a library picture's name must stay text."""
    folder = tmp_path / "pics"
    folder.mkdir()
    name = '<a href="javascript:alert(1)">x<img src=x onerror=alert(1)>.png'
    Image.new("L", (8, 8), color=90).save(folder / name)
    manager = LibraryManager()
    manager.create("tiny")
    manager.add_folder("tiny", folder)
    sources = np.zeros((2, 2, 3), np.int32)
    mosaic = build_mosaic(_arrays(manager, sources), "tiny", manager)
    assert mosaic.names[0] == name
    text = source_map_figure(mosaic).data[0].text[0][0]
    assert "<a " not in text and "<img" not in text
    assert "&lt;a href=&quot;javascript:alert(1)&quot;&gt;x&lt;img src=x onerror=alert(1)&gt;.png" in text
    assert text.count("<br>") == 2  # the studio's own line breaks stay
