"""Training runs, checkpoints load back (safetensors + JSON only) and resume continues the step count."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from core.errors import BadInputError
from core.lab import TrainConfig, build_model, ddim_sample, load_config, load_model, predict_x0, train
from core.lab.checkpoint import CONFIG_FILE, STATE_FILE, WEIGHTS_FILE

TINY_UNET = {"block_channels": [8, 16], "layers_per_block": 1, "norm_groups": 4}
TINY_RESNET = {"width": 8, "blocks": 2, "emb_dim": 16}


def _data(n: int = 12, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    labels = torch.arange(n) % 3
    return images, labels


@pytest.mark.parametrize("kind,hparams", [("unet", TINY_UNET), ("resnet", TINY_RESNET)])
def test_train_checkpoint_and_resume(tmp_path, kind, hparams):
    torch.set_num_threads(1)
    images, labels = _data()
    folder = tmp_path / "model"
    config = TrainConfig(model_kind=kind, hparams=hparams, steps=3, batch_size=4, checkpoint_every=2, device="cpu")
    seen = []
    result = train(images, folder, config, labels=labels, label_names=["a", "b", "c"], on_progress=seen.append)
    assert result.step == 3 and result.resumed_from == 0
    assert [p.step for p in seen] == [1, 2, 3]
    assert seen[1].checkpointed and seen[2].checkpointed
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert {p.name for p in folder.iterdir()} >= {CONFIG_FILE, WEIGHTS_FILE, STATE_FILE}
    data = json.loads((folder / CONFIG_FILE).read_text())
    assert data["model_kind"] == kind and data["size"] == 8 and data["channels"] == 1
    assert data["label_names"] == ["a", "b", "c"] and data["step"] == 3
    # Every stored file is safetensors or JSON.
    state = load_file(str(folder / STATE_FILE))
    assert any(k.startswith("optim.") for k in state) and "rng" in state

    model, cfg = load_model(folder)
    assert cfg.step == 3 and cfg.num_classes == 3
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        out = model(x, torch.full((2,), 0.5), torch.tensor([0, -1]))
    assert out.shape == x.shape

    # Resume: continues from step 3 to 5, keeping the optimizer state.
    config.steps = 5
    resumed = train(images, folder, config, labels=labels, label_names=["a", "b", "c"])
    assert resumed.resumed_from == 3 and resumed.step == 5
    assert load_config(folder).step == 5
    assert len(resumed.losses) == 2


def test_resume_matches_uninterrupted_training(tmp_path):
    torch.set_num_threads(1)
    images, labels = _data()
    base = dict(model_kind="unet", hparams=TINY_UNET, batch_size=4, checkpoint_every=100, device="cpu")
    straight = train(images, tmp_path / "a", TrainConfig(steps=4, **base), labels=labels, label_names=["a", "b", "c"])
    train(images, tmp_path / "b", TrainConfig(steps=2, **base), labels=labels, label_names=["a", "b", "c"])
    resumed = train(images, tmp_path / "b", TrainConfig(steps=4, **base), labels=labels, label_names=["a", "b", "c"])
    assert resumed.losses == pytest.approx(straight.losses[2:], rel=1e-4, abs=1e-5)
    wa, wb = load_file(str(tmp_path / "a" / WEIGHTS_FILE)), load_file(str(tmp_path / "b" / WEIGHTS_FILE))
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-5)


def test_unconditional_when_no_labels(tmp_path):
    images, _ = _data()
    config = TrainConfig(model_kind="resnet", hparams=TINY_RESNET, steps=1, batch_size=4, device="cpu")
    train(images, tmp_path / "m", config)
    _, cfg = load_model(tmp_path / "m")
    assert cfg.num_classes == 0 and cfg.label_names == []


def test_bad_inputs(tmp_path):
    with pytest.raises(BadInputError):
        train(torch.zeros(0, 1, 8, 8), tmp_path / "m", TrainConfig(steps=1))
    with pytest.raises(BadInputError):
        build_model("transformer", 8, 1, 0, {})
    with pytest.raises(BadInputError):
        load_model(tmp_path / "missing")


def test_ddim_is_deterministic_and_matches_score_grid():
    torch.manual_seed(0)
    model = build_model("unet", 8, 1, 0, TINY_UNET)
    noise = torch.randn(3, 1, 8, 8)
    a = ddim_sample(model, noise, steps=5)
    b = ddim_sample(model, noise, steps=5, batch_size=2)
    torch.testing.assert_close(a.images, b.images)
    assert a.step_x.shape == (5, 3, 1, 8, 8) and a.step_x0.shape == (5, 3, 1, 8, 8)
    assert a.times[0] == 1.0 and a.times[-1] == 0.0
    torch.testing.assert_close(a.step_x[0], noise)
    assert float(a.images.abs().max()) <= 1.0
    with torch.no_grad():
        torch.testing.assert_close(predict_x0(model, a.step_x[2], a.times[2]), a.step_x0[2])
