"""Pearson r on known inputs, the comparison table, the grid, and scale calibration on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import BadInputError
from core.lab import ComparisonTable, build_model, calibrate_scales, load_scales, pearson_r, run_comparison, save_scales
from core.lab.calibrate import candidate_sizes, cosine


def test_pearson_r_known_values():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 8, 8))
    assert pearson_r(x, 2 * x + 1) == pytest.approx(1.0, abs=1e-12)
    assert pearson_r(x, -x) == pytest.approx(-1.0, abs=1e-12)
    y = rng.normal(size=(1, 8, 8))
    assert pearson_r(x, y) == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1], abs=1e-12)
    assert pearson_r(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(pearson_r(x, y))
    assert pearson_r(x, np.zeros_like(x)) == 0.0
    with pytest.raises(BadInputError):
        pearson_r(x, np.zeros(3))


def test_table_statistics_and_markdown():
    table = ComparisonTable(
        kinds=["is", "bbels"],
        seeds=[0, 1, 2, 3],
        class_labels=None,
        r={"is": [0.5, 0.9, 0.2, 0.7], "bbels": [0.9, 0.8, 0.95, 0.97]},
        steps=20,
        patch_sizes=[3] * 20,
    )
    assert table.median_r("bbels") == pytest.approx(0.925)
    assert table.median_r2("is") == pytest.approx(np.median(np.square([0.5, 0.9, 0.2, 0.7])))
    assert table.fraction_beats("bbels", "is") == 0.75
    text = table.to_markdown()
    assert "| bbELS | 0.925 |" in text and "75%" in text
    assert table.to_json()["els_beats_is"] == 0.75


def test_cosine_and_candidates():
    a = torch.randn(3, 1, 4, 4)
    torch.testing.assert_close(cosine(a, 3 * a), torch.ones(3, dtype=torch.float64))
    assert candidate_sizes(4) == [1, 3, 5, 7]


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_model("unet", 8, 1, 2, {"block_channels": [8, 16], "layers_per_block": 1, "norm_groups": 4})
    library = torch.rand(10, 1, 8, 8) * 2 - 1
    labels = torch.arange(10) % 2
    return model.eval(), library, labels


def test_calibration_returns_valid_schedule(tiny, tmp_path):
    model, library, labels = tiny
    cal = calibrate_scales(model, library, labels, steps=4, samples=2, kind="bbels", search="full")
    assert len(cal.patch_sizes) == 4 and len(cal.similarity) == 4
    assert all(p in candidate_sizes(8) for p in cal.patch_sizes)
    assert all(-1.0 <= s <= 1.0 for s in cal.similarity)
    for k, curve in enumerate(cal.curves):
        assert set(curve) == set(candidate_sizes(8))
        assert curve[cal.patch_sizes[k]] == max(curve.values())
    save_scales(tmp_path, cal)
    assert load_scales(tmp_path).patch_sizes == cal.patch_sizes
    # The coarse search and the nearest-images approximation also give valid sizes.
    fast = calibrate_scales(model, library, labels, steps=2, samples=2, search="coarse", top_k=3)
    assert all(p % 2 == 1 and 1 <= p <= 15 for p in fast.patch_sizes)
    with pytest.raises(BadInputError):
        calibrate_scales(model, library, None, steps=2)


def test_run_comparison_same_noise(tiny, tmp_path):
    model, library, labels = tiny
    grid = tmp_path / "grid.png"
    table = run_comparison(
        model, library, labels, seeds=[0, 1, 2], patch_sizes=[7, 5, 3], steps=3, batch=2, grid_path=grid
    )
    assert table.kinds == ["is", "ls", "bbels"] and len(table.r["bbels"]) == 3
    assert table.class_labels == [0, 1, 0]
    for kind in table.kinds:
        for i in range(3):
            assert table.r[kind][i] == pytest.approx(pearson_r(table.images["net"][i], table.images[kind][i]))
    assert grid.is_file()
    assert "| IS |" in table.to_markdown()
    with pytest.raises(BadInputError):
        run_comparison(model, library, labels, seeds=[0], patch_sizes=[3], steps=2)
