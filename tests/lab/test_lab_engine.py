"""The trained-model engine: the committed demo model generates, reproducibly from the seed."""

from __future__ import annotations

import json

import pytest
import torch

from core.engines.trained import TrainedModelEngine, TrainedModelRequest, resample_schedule
from core.errors import BadInputError
from core.lab import TrainConfig, train
from core.lab.calibrate import Calibration, save_scales
from core.lab.demo import DEMO_MODEL_DIR


@pytest.fixture(scope="module")
def engine():
    torch.set_num_threads(1)
    return TrainedModelEngine(device="cpu")


def test_demo_model_is_committed_small_and_safe():
    names = {p.name for p in DEMO_MODEL_DIR.iterdir()}
    assert names == {
        "config.json",
        "model.safetensors",
        "scales.json",
        "scales_ls.json",
        "scales_els.json",
        "comparison.json",
    }
    assert sum(p.stat().st_size for p in DEMO_MODEL_DIR.iterdir()) < 5 * 2**20
    config = json.loads((DEMO_MODEL_DIR / "config.json").read_text())
    scales = json.loads((DEMO_MODEL_DIR / "scales.json").read_text())
    assert config["library"] == "digits" and len(scales["patch_sizes"]) == 20


def test_demo_generates_reproducibly(engine):
    request = TrainedModelRequest(seed=7, count=2, label="3", steps=10)
    first = engine.generate(request)
    again = engine.generate(TrainedModelRequest(seed=7, count=2, label="3", steps=10))
    size = engine.describe()["size"]
    assert len(first) == 2
    assert first[0].image.size == (size, size) and first[0].image.mode == "L"
    assert [g.seed for g in first] == [7, 8]
    assert first[0].params["label"] == "3" and first[0].params["engine"] == "trained"
    assert first[0].image.tobytes() == again[0].image.tobytes()
    assert first[1].image.tobytes() == again[1].image.tobytes()
    # Image i depends only on its own seed.
    single = engine.generate(TrainedModelRequest(seed=8, count=1, label="3", steps=10))
    assert single[0].image.tobytes() == first[1].image.tobytes()


def test_demo_comparison_is_reproducible():
    """comparison.json of the demo model: exact, 50 seeds, its own schedules, and the first seeds recompute."""
    from core.lab import compare_saved_model
    from core.lab.calibrate import saved_schedules
    from core.lab.compare import load_comparison

    torch.set_num_threads(1)
    saved = load_comparison(DEMO_MODEL_DIR)
    assert saved is not None and saved.exact() and saved.seeds == list(range(50))
    assert saved.kinds == ["is", "ls", "els", "bbels"]
    schedules = {k: c.patch_sizes for k, c in saved_schedules(DEMO_MODEL_DIR).items()}
    assert saved.info["schedules"] == schedules and saved.patch_sizes == schedules["bbels"]
    again = compare_saved_model(DEMO_MODEL_DIR, seeds=[0, 1], keep_images=False)
    for kind in saved.kinds:
        assert again.r[kind] == pytest.approx(saved.r[kind][:2], abs=1e-3), kind


def test_bad_requests(engine):
    with pytest.raises(BadInputError):
        engine.generate(TrainedModelRequest(label="cat"))
    with pytest.raises(BadInputError):
        engine.generate(TrainedModelRequest(count=0))
    with pytest.raises(BadInputError):
        engine.generate(TrainedModelRequest(model_path="/nonexistent/model"))


def _tiny_digits_model(tmp_path):
    """A one-step UNet on 40 images of the built-in digits library at 8×8, saved in ``tmp_path/tiny``."""
    from core.libraries import LibraryManager

    lib = LibraryManager().load("digits", 8)
    folder = tmp_path / "tiny"
    config = TrainConfig(
        model_kind="unet",
        hparams={"block_channels": [8, 16], "layers_per_block": 1, "norm_groups": 4},
        steps=1,
        batch_size=4,
        device="cpu",
    )
    train(lib.images[:40], folder, config, labels=lib.labels[:40], label_names=lib.label_names, library="digits")
    return lib, folder


def test_els_prediction_from_same_noise(tmp_path, engine):
    """A tiny model on the built-in digits library: ELS image and r come with each generated image."""

    lib, folder = _tiny_digits_model(tmp_path)
    save_scales(folder, Calibration(kind="bbels", steps=4, size=8, patch_sizes=[9, 7, 5, 3], similarity=[0.0] * 4))
    seen = []
    out = engine.generate(
        TrainedModelRequest(model_path=str(folder), seed=3, count=1, label="1", steps=4, compare_els=True),
        on_progress=seen.append,
    )
    assert out[0].arrays["els_image"].shape == (1, 8, 8)
    # the bar moves through both: the network's steps in its first half, the patch machine's in the second
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    machine = [p for p in seen if p.message.startswith("The patch machine is drawing")]
    assert len(machine) == 4 and all(p.fraction > 0.5 for p in machine) and machine[0].fraction < 1.0
    assert -1.0 <= out[0].params["els_r"] <= 1.0
    els = engine.predict_els(TrainedModelRequest(model_path=str(folder), seed=3, count=1, label="1", steps=4))
    assert els[0].params["model"] == "bbels" and els[0].image.size == (8, 8)
    assert resample_schedule([9, 7, 5, 3], 2) == [9, 3]


def test_workflow_on_demo_model(tmp_path):
    import shutil

    from core.lab import compare_saved_model

    folder = tmp_path / "demo"
    shutil.copytree(DEMO_MODEL_DIR, folder)
    table = compare_saved_model(folder, seeds=[0], kinds=("is",))
    assert len(table.r["is"]) == 1 and -1.0 <= table.r["is"][0] <= 1.0


def test_compare_demo_calibrates_and_saves_comparison(tmp_path):
    """compare_demo on a tiny model: own LS / ELS schedules, then an exact comparison in comparison.json."""
    from core.lab.calibrate import load_scales
    from core.lab.compare import load_comparison
    from core.lab.demo import compare_demo

    torch.set_num_threads(1)
    lib, folder = _tiny_digits_model(tmp_path)
    bbels = Calibration(kind="bbels", steps=3, size=8, patch_sizes=[9, 5, 3], similarity=[0.0] * 3, samples=1)
    save_scales(folder, bbels)
    table = compare_demo(folder, seeds=2, calibration_samples=1)
    ls, els = load_scales(folder, "ls"), load_scales(folder, "els")
    assert ls.kind == "ls" and els.kind == "els" and ls.samples == 1 and len(els.patch_sizes) == 3
    saved = load_comparison(folder)
    assert saved is not None and saved.kinds == ["is", "ls", "els", "bbels"] and saved.seeds == [0, 1]
    assert saved.exact() and saved.r == table.r
    assert saved.info["schedules"] == {"ls": ls.patch_sizes, "els": els.patch_sizes, "bbels": [9, 5, 3]}
    assert saved.info["own_schedule"] == ["ls", "els", "bbels"]
    assert saved.info["command"].startswith("python -m core.lab.demo --compare-only --seeds 2")
    assert saved.info["calibrations"]["ls"]["samples"] == 1 and saved.info["wall_seconds"] >= 0


def test_the_authors_time_grid_for_network_and_machine(engine, monkeypatch):
    """grid="reference": 19 network evaluations at t = 0.95 … 0.05, the machine on the same times
    with the 20-entry schedule; the choice is recorded with the images and in the Lab job's params."""
    from core.lab import ddim
    from core.lab.jobs import compare_params
    from core.score.schedules import REFERENCE_STEPS

    seen: list[float] = []
    real = ddim.predict_x0

    def spy(model, x, t, labels=None):
        seen.append(round(float(t), 6))
        return real(model, x, t, labels)

    monkeypatch.setattr(ddim, "predict_x0", spy)
    request = TrainedModelRequest(seed=7, count=1, label="3", steps=10, compare_els=True, grid="reference")
    (image,) = engine.generate(request)
    assert seen == [round(i / REFERENCE_STEPS, 6) for i in range(REFERENCE_STEPS - 1, 0, -1)]
    assert image.params["grid"] == "reference" and image.params["steps"] == REFERENCE_STEPS - 1
    assert len(image.params["patch_sizes"]) == REFERENCE_STEPS and -1.0 <= image.params["els_r"] <= 1.0
    seen.clear()
    (uniform,) = engine.generate(TrainedModelRequest(seed=7, count=1, label="3", steps=10))
    assert len(seen) == 10 and "grid" not in uniform.params
    assert compare_params(1, 2, "reference")["grid"] == "reference" and "grid" not in compare_params(1, 2)
    with pytest.raises(BadInputError, match="time grid"):
        engine.generate(TrainedModelRequest(seed=7, grid="fancy"))
