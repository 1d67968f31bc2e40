"""A saved analysis loads back exactly; a damaged or missing one is a plain error, never unpickled."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest
from analyzer_synth import collage

from core.analyzer import AnalysisResult
from core.analyzer.saved import DAMAGED, load_analysis, save_analysis
from core.errors import BadInputError


def assert_same(a: AnalysisResult, b: AnalysisResult) -> None:
    """Every field equal: arrays element by element (and dtype), pictures pixel by pixel."""
    for field in fields(AnalysisResult):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if isinstance(left, np.ndarray):
            assert left.dtype == right.dtype and np.array_equal(left, right), field.name
        elif field.name == "analysed_image":
            assert (left is None) == (right is None)
            if left is not None:
                assert left.mode == right.mode and left.size == right.size
                assert np.array_equal(np.asarray(left), np.asarray(right))
        elif field.name == "scales":
            assert list(left) == list(right)
            for patch in left:
                for scale_field in fields(left[patch]):
                    x, y = getattr(left[patch], scale_field.name), getattr(right[patch], scale_field.name)
                    if isinstance(x, np.ndarray):
                        assert x.dtype == y.dtype and np.array_equal(x, y), (patch, scale_field.name)
                    else:
                        assert x == y, (patch, scale_field.name)
        else:
            assert left == right, field.name


@pytest.fixture(scope="module")
def analysis(shared) -> AnalysisResult:
    analyzer, library = shared
    result = analyzer.analyze(collage(library, seed=3).image, "shots")
    assert result.sources and result.regions and result.scales  # a real mosaic, not an empty one
    return result


def test_a_saved_analysis_loads_back_exactly(analysis, tmp_path):
    folder = save_analysis(analysis, tmp_path / "job" / "analysis")
    assert sorted(p.name for p in folder.iterdir()) == ["analysed.png", "analysis.json", "arrays.npz"]
    assert [p.name for p in folder.parent.iterdir()] == ["analysis"]  # no staging folder left behind
    loaded = load_analysis(folder)
    assert_same(analysis, loaded)
    assert loaded.to_json(include_maps=True) == analysis.to_json(include_maps=True)


def test_saving_again_replaces_the_older_result(analysis, shared, tmp_path):
    analyzer, library = shared
    other = analyzer.analyze(collage(library, seed=4).image, "shots")
    folder = tmp_path / "analysis"
    save_analysis(other, folder)
    save_analysis(analysis, folder)
    assert_same(analysis, load_analysis(folder))
    assert [p.name for p in tmp_path.iterdir()] == ["analysis"]


def _damage_json(folder, change) -> None:
    meta = json.loads((folder / "analysis.json").read_text())
    change(meta)
    (folder / "analysis.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage",
    [
        "missing folder",
        "truncated arrays",
        "no json",
        "json not json",
        "a map of the wrong shape",
        "a pickled array",
        "a scale without its maps",
        "a number that is text",
        "missing picture",
    ],
)
def test_a_damaged_or_missing_result_is_a_plain_error(analysis, tmp_path, damage):
    folder = save_analysis(analysis, tmp_path / "analysis")
    if damage == "missing folder":
        folder = tmp_path / "nothing-here"
    elif damage == "truncated arrays":
        data = (folder / "arrays.npz").read_bytes()
        (folder / "arrays.npz").write_bytes(data[: len(data) // 2])
    elif damage == "no json":
        (folder / "analysis.json").unlink()
    elif damage == "json not json":
        (folder / "analysis.json").write_text("{not json")
    elif damage == "a map of the wrong shape":
        with np.load(folder / "arrays.npz") as npz:
            arrays = dict(npz)
        arrays["similarity"] = arrays["similarity"][:-1]
        np.savez(folder / "arrays.npz", **arrays)
    elif damage == "a pickled array":
        with np.load(folder / "arrays.npz") as npz:
            arrays = dict(npz)
        arrays["source_map"] = np.array([{"a": 1}, None], dtype=object)
        np.savez(folder / "arrays.npz", **arrays)
    elif damage == "a scale without its maps":
        _damage_json(folder, lambda meta: meta["scales"].append(dict(meta["scales"][0], patch=99)))
    elif damage == "a number that is text":
        _damage_json(folder, lambda meta: meta.update(borrowed_fraction="lots"))
    elif damage == "missing picture":
        (folder / "analysed.png").unlink()
    with pytest.raises(BadInputError) as caught:
        load_analysis(folder)
    assert str(caught.value) == DAMAGED
