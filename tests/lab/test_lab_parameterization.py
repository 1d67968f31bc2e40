"""ε-, v- and x0-prediction: targets, clean-image estimates, sampling and the learning-rate schedule."""

from __future__ import annotations

import json
import math

import pytest
import torch

from core.errors import BadInputError
from core.lab import TrainConfig, build_model, load_model, train
from core.lab.checkpoint import CONFIG_FILE
from core.lab.ddim import predict_x0
from core.lab.parameterization import PREDICTIONS, model_prediction, training_target, x0_from_output
from core.lab.train import learning_rate

TINY_UNET = {"block_channels": [8, 16], "layers_per_block": 1, "norm_groups": 4}


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("ab", [1.5e-4, 0.3, 0.999])
def test_exact_target_gives_back_x0(prediction, ab):
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(3, 1, 5, 5, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(3, 1, 5, 5, generator=g, dtype=torch.float64)
    a = torch.tensor(ab, dtype=torch.float64)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    target = training_target(prediction, x0, noise, a)
    assert torch.allclose(x0_from_output(prediction, x_t, target, ab), x0, atol=1e-9)


def test_v_is_well_conditioned_where_epsilon_is_not():
    """An output error of 0.01 at ā = 1.5e-4 moves the x0 estimate 81× more through ε than through v."""
    ab = 1.5e-4
    x_t = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    err = torch.full_like(x_t, 0.01)
    eps_err = (x0_from_output("epsilon", x_t, err, ab) - x0_from_output("epsilon", x_t, 0 * err, ab)).abs().max()
    v_err = (x0_from_output("v", x_t, err, ab) - x0_from_output("v", x_t, 0 * err, ab)).abs().max()
    assert float(eps_err) == pytest.approx(0.01 * math.sqrt(1 - ab) / math.sqrt(ab))
    assert float(v_err) < 0.0101 and float(eps_err) > 80 * float(v_err)


def test_unknown_prediction_is_refused():
    with pytest.raises(BadInputError, match="Unknown prediction"):
        build_model("unet", 8, 1, 0, {**TINY_UNET, "prediction": "score"})


@pytest.mark.parametrize("kind,hparams", [("unet", TINY_UNET), ("resnet", {"width": 8, "blocks": 2, "emb_dim": 16})])
def test_v_model_saves_and_samples_through_v(tmp_path, kind, hparams):
    torch.manual_seed(0)
    images = torch.rand(8, 1, 8, 8) * 2 - 1
    config = TrainConfig(model_kind=kind, hparams={**hparams, "prediction": "v"}, steps=2, batch_size=4, device="cpu")
    train(images, tmp_path / "m", config)
    data = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())
    assert data["prediction"] == "v" and data["hparams"]["prediction"] == "v"
    model, _ = load_model(tmp_path / "m")
    assert model_prediction(model) == "v"
    x, t = torch.randn(2, 1, 8, 8), 0.4
    from core.score.schedules import alpha_bar

    ab = float(alpha_bar(t))
    with torch.no_grad():
        out = model(x, torch.full((2,), t))
        expected = (math.sqrt(ab) * x - math.sqrt(1 - ab) * out).clamp(-1, 1)
        assert torch.allclose(predict_x0(model, x, t), expected, atol=1e-6)
        # The same output read as ε would give another estimate: the setting is really used.
        assert not torch.allclose(x0_from_output("epsilon", x, out, ab).clamp(-1, 1), expected, atol=1e-3)


def test_old_models_without_the_setting_predict_epsilon():
    model = build_model("unet", 8, 1, 0, TINY_UNET)
    assert model_prediction(model) == "epsilon" and "prediction" not in model.hparams


def test_cosine_learning_rate_warms_up_then_decays_to_the_floor():
    config = TrainConfig(steps=1100, lr=2e-3, warmup_steps=100, lr_schedule="cosine", min_lr_ratio=0.1)
    lrs = [learning_rate(config, s) for s in range(1100)]
    assert lrs[0] == pytest.approx(2e-5) and lrs[99] == pytest.approx(2e-3)
    assert lrs[600] == pytest.approx(1.1e-3, rel=1e-3)  # half way: the mean of lr and the floor
    assert lrs[-1] == pytest.approx(2e-4, rel=1e-2) and min(lrs[100:]) >= 2e-4 - 1e-12
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:], strict=False))
    constant = TrainConfig(steps=1100, lr=2e-3, warmup_steps=100)
    assert learning_rate(constant, 1000) == pytest.approx(2e-3)


def test_unknown_lr_schedule_is_refused(tmp_path):
    config = TrainConfig(hparams=TINY_UNET, steps=1, lr_schedule="linear")
    with pytest.raises(BadInputError, match="learning-rate schedule"):
        train(torch.zeros(2, 1, 8, 8), tmp_path / "m", config)
