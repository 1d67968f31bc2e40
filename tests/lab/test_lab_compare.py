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


def test_run_comparison_els_and_own_schedules(tiny):
    """Circular ELS runs as its own machine; a machine's own schedule replaces the shared one."""
    from core.lab.calibrate import sample_labels
    from core.lab.ddim import seeded_noise
    from core.score import sample

    model, library, labels = tiny
    shared, own_ls = [7, 5, 3], [1, 1, 3]
    table = run_comparison(
        model,
        library,
        labels,
        seeds=[0, 1],
        patch_sizes=shared,
        steps=3,
        kinds=("is", "ls", "els", "bbels"),
        schedules={"ls": own_ls},
    )
    assert table.kinds == ["is", "ls", "els", "bbels"] and len(table.r["els"]) == 2
    noise = seeded_noise([0, 1], 1, 8)
    class_labels = sample_labels([0, 1], labels, True)
    for kind, sizes in (("els", shared), ("ls", own_ls), ("bbels", shared)):
        expected = sample(library, noise, kind, sizes, labels=labels, class_labels=class_labels).images
        torch.testing.assert_close(table.images[kind], expected)
    assert not torch.allclose(table.images["els"], table.images["bbels"])
    assert table.info["schedules"] == {"ls": own_ls, "els": shared, "bbels": shared}
    assert table.info["own_schedule"] == ["ls"] and table.exact()
    text = table.to_markdown()
    assert "| ELS |" in text and "all machines exact" in text
    assert "LS: own calibrated patch sizes; ELS and bbELS: the bbELS schedule" in text
    with pytest.raises(BadInputError):
        run_comparison(model, library, labels, seeds=[0], patch_sizes=shared, steps=3, schedules={"ls": [3]})


def _table(r: dict[str, list[float]], **info) -> ComparisonTable:
    seeds = list(range(len(next(iter(r.values())))))
    return ComparisonTable(kinds=list(r), seeds=seeds, class_labels=None, r=r, steps=2, patch_sizes=[3, 1], info=info)


def test_table_rows_beats_is_column_and_json():
    table = _table({"is": [0.5, 0.9, 0.2, 0.7], "els": [0.6, 0.8, 0.3, 0.9], "bbels": [0.9, 0.8, 0.95, 0.97]})
    rows = {row["machine"]: row for row in table.rows()}
    assert rows["IS"]["beats IS"] is None
    assert rows["ELS"]["beats IS"] == 0.75 and rows["bbELS"]["beats IS"] == 0.75
    assert rows["ELS"]["min r"] == pytest.approx(0.3) and rows["ELS"]["mean r"] == pytest.approx(0.65)
    text = table.to_markdown()
    assert "| ELS | 0.700 | 0.500 | 0.650 | 0.300 | 75% |" in text
    assert "| IS | 0.600 | 0.370 | 0.575 | 0.200 | — |" in text
    summary = table.to_json()["summary"]
    assert summary["els"]["beats_is"] == 0.75 and summary["is"]["beats_is"] is None
    assert summary["bbels"]["min_r"] == pytest.approx(0.8)
    approx = _table({"is": [0.5], "bbels": [0.7]}, approximate=True, top_k=32)
    assert "32 most used library images" in approx.to_markdown() and "exact" not in approx.to_markdown()
    assert "beats IS" not in _table({"ls": [0.5], "bbels": [0.7]}).to_markdown()


def test_merge_refuses_exact_with_approximate():
    exact = _table({"is": [0.5], "bbels": [0.7]}, approximate=False, top_k=None)
    approx = _table({"is": [0.4], "bbels": [0.6]}, approximate=True, top_k=32)
    with pytest.raises(BadInputError):
        ComparisonTable.merge([exact, approx])
    merged = ComparisonTable.merge([exact, _table({"is": [0.4], "bbels": [0.9]}, approximate=False, top_k=None)])
    assert merged.r["bbels"] == [0.7, 0.9]


def test_save_and_load_comparison(tmp_path):
    from core.lab.compare import load_comparison, save_comparison

    assert load_comparison(tmp_path) is None
    table = _table({"is": [0.5, 0.9], "els": [0.6, 0.95]}, approximate=False, top_k=None)
    path = save_comparison(tmp_path, table, command="make it", wall_seconds=1.5)
    assert path == tmp_path / "comparison.json"
    loaded = load_comparison(tmp_path)
    assert loaded is not None and loaded.r == table.r and loaded.seeds == table.seeds
    assert loaded.info["command"] == "make it" and loaded.info["wall_seconds"] == 1.5
    assert loaded.info["environment"]["threads"] == torch.get_num_threads()
    assert loaded.to_markdown() == table.to_markdown()
    path.write_text('{"kinds": ["is"], "seeds": [0, 1], "r": {"is": [0.5]}, "steps": 2, "patch_sizes": [1, 1]}')
    with pytest.raises(BadInputError):
        load_comparison(tmp_path)
    path.write_text("{not json")
    with pytest.raises(BadInputError):
        load_comparison(tmp_path)


def test_scales_files_per_machine(tmp_path):
    from core.lab.calibrate import Calibration, saved_schedules, scales_file

    assert scales_file("bbels") == "scales.json" and scales_file("ls") == "scales_ls.json"
    with pytest.raises(BadInputError):
        scales_file("is")
    save_scales(tmp_path, Calibration(kind="bbels", steps=2, size=8, patch_sizes=[5, 3], similarity=[0.0, 0.0]))
    save_scales(tmp_path, Calibration(kind="ls", steps=2, size=8, patch_sizes=[7, 1], similarity=[0.0, 0.0]))
    assert {p.name for p in tmp_path.iterdir()} == {"scales.json", "scales_ls.json"}
    assert load_scales(tmp_path).patch_sizes == [5, 3]
    assert load_scales(tmp_path, "ls").patch_sizes == [7, 1]
    assert {k: c.patch_sizes for k, c in saved_schedules(tmp_path).items()} == {"bbels": [5, 3], "ls": [7, 1]}
    with pytest.raises(BadInputError):
        load_scales(tmp_path, "els")


def test_join_puts_machine_runs_side_by_side():
    base = {"approximate": False, "top_k": None, "shared_schedule": "bbels"}
    main = _table({"is": [0.5, 0.6], "bbels": [0.9, 0.8]}, **base, own_schedule=["bbels"], schedules={"bbels": [3, 1]})
    els = _table({"els": [0.1, 0.7]}, **base, own_schedule=["els"], schedules={"els": [5, 1]})
    joined = ComparisonTable.join([main, els])
    assert joined.kinds == ["is", "els", "bbels"] and joined.r["els"] == [0.1, 0.7]
    assert joined.info["schedules"] == {"bbels": [3, 1], "els": [5, 1]}
    assert joined.info["own_schedule"] == ["els", "bbels"]
    assert joined.fraction_beats("els", "is") == 0.5
    with pytest.raises(BadInputError):
        ComparisonTable.join([main, main])
    with pytest.raises(BadInputError):
        ComparisonTable.join([main, _table({"els": [0.1, 0.7]}, **{**base, "approximate": True})])
    with pytest.raises(BadInputError):
        ComparisonTable.join([main, _table({"els": [0.1, 0.7, 0.2]}, **base)])


def test_approximate_method_note():
    from core.lab.compare import approximate_method

    assert approximate_method({"top_k": 8}) == "the 8 most used library images per sample"
    both = approximate_method({"top_k": 8, "patch_index": True})
    assert "patch index for ELS / bbELS" in both and "8 most used" in both
