"""Every built-in library checked against the originals it was made from.

"Photo snippets" is made of square crops of classic photos, each shrunk to 64 px: the whole photo holds
its snippets at a fifth to a third of their size in the library, so only the search at other sizes
finds them. "Faces" and "Digits" keep each original whole: an original (enlarged) is a near copy.
Slow: it indexes the real built-in libraries (about 400 + 200 + 1,800 pictures).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.analyzer import Analyzer
from core.libraries import LibraryManager
from core.libraries.builtins import PHOTO_NAMES, _photo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory):
    root = tmp_path_factory.mktemp("builtins")
    return Analyzer(LibraryManager(root=root / "libraries"), index_root=root / "indexes")


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_each_source_photo_borrows_from_its_snippets(analyzer, name):
    array = _photo(name)
    assert array is not None
    result = analyzer.analyze(Image.fromarray(array), "photos")
    # borrowing: a good part of the photo is found, mostly in its own snippets (the copy risk itself
    # depends on how big the largest single piece is: many small snippets can still be "low")
    assert result.borrowed_fraction >= 0.15, result.summary
    own = sum(s.share for s in result.sources if s.item_id.startswith(f"{name}-"))
    assert own >= 0.5 * result.borrowed_fraction, result.summary
    assert result.sources[0].item_id.startswith(f"{name}-"), result.summary
    assert result.originality < 95, result.summary


@pytest.mark.parametrize("position", [0, 42, 99, 150])
def test_an_original_face_is_a_near_copy(analyzer, position):
    import skimage.data

    faces = np.asarray(skimage.data.lfw_subset())
    face = faces[position]
    if face.dtype != np.uint8:
        face = np.clip(face * 255.0, 0, 255).round().astype(np.uint8)
    result = analyzer.analyze(Image.fromarray(face).resize((100, 100), Image.Resampling.BICUBIC), "faces")
    assert result.near_copy.is_copy and result.copy_risk == "high", result.summary
    assert result.near_copy.index == position


@pytest.mark.parametrize("position", [0, 5, 900, 1700])
def test_an_original_digit_is_a_near_copy(analyzer, position):
    from sklearn.datasets import load_digits

    digit = np.clip(load_digits().images[position] * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    result = analyzer.analyze(Image.fromarray(digit).resize((64, 64), Image.Resampling.BICUBIC), "digits")
    assert result.near_copy.is_copy and result.copy_risk == "high", result.summary
    # several digits can be near-identical 8×8 pictures: the one named must look like the original
    named = np.asarray(analyzer.libraries.item_image("digits", result.near_copy.index).convert("L"), dtype=float)
    assert np.abs(named - digit).mean() < 20
