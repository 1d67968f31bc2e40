"""The training curve: a probe measures the network against exact machines; points survive a resume."""

from __future__ import annotations

import torch

from core.lab import TrainConfig, train
from core.lab.compare import pearson_r
from core.lab.curve import CURVE_FILE, Probe, append_curve_point, load_curve
from core.lab.ddim import ddim_sample
from core.score import sample

TINY_UNET = {"block_channels": [8, 16], "layers_per_block": 1, "norm_groups": 4, "prediction": "v"}


def _library() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.rand(6, 1, 8, 8, generator=g) * 2 - 1, torch.arange(6) % 2


def test_probe_measures_against_exact_machines():
    images, labels = _library()
    probe = Probe(images, labels, seeds=[5, 6], patch_sizes=[7, 5, 3, 1], kinds=("is", "bbels"))
    # The machines' pictures are the exact sampler's, class by seed as in the comparison.
    expected = sample(images, probe.noise, "bbels", [7, 5, 3, 1], labels=labels, class_labels=probe.class_labels)
    assert torch.allclose(probe.images["bbels"], expected.images)
    torch.manual_seed(0)
    from core.lab import build_model

    model = build_model("unet", 8, 1, 2, TINY_UNET)
    point = probe(model)
    net = ddim_sample(model, probe.noise, 4, probe.class_labels).images
    for kind in ("is", "bbels"):
        r = [pearson_r(net[i], probe.images[kind][i]) for i in range(2)]
        assert point[f"r_{kind}_all"] == [round(v, 4) for v in r]
        assert point[f"r_{kind}"] == round(sorted(r)[0] / 2 + sorted(r)[1] / 2, 4)


def test_training_keeps_a_curve_and_resuming_extends_it(tmp_path):
    torch.set_num_threads(1)
    images, labels = _library()
    probe = Probe(images, labels, seeds=[1], patch_sizes=[5, 3, 1], kinds=("bbels",))
    folder = tmp_path / "m"
    config = TrainConfig(hparams=TINY_UNET, steps=4, batch_size=3, probe_every=2, checkpoint_every=2, device="cpu")
    train(images, folder, config, labels=labels, label_names=["a", "b"], probe=probe)
    curve = load_curve(folder)
    assert curve["probe"]["seeds"] == [1] and curve["probe"]["patch_sizes"] == [5, 3, 1]
    assert [p["step"] for p in curve["points"]] == [2, 4]
    assert all(isinstance(p["loss"], float) and -1 <= p["r_bbels"] <= 1 for p in curve["points"])
    config.steps = 6
    train(images, folder, config, labels=labels, label_names=["a", "b"], probe=probe)
    assert [p["step"] for p in load_curve(folder)["points"]] == [2, 4, 6]
    # A fresh start (no resume) begins a new curve.
    config.steps = 2
    train(images, folder, config, labels=labels, label_names=["a", "b"], probe=probe, resume=False)
    assert [p["step"] for p in load_curve(folder)["points"]] == [2]
    assert (folder / CURVE_FILE).is_file()


def test_a_point_measured_again_replaces_the_old_one(tmp_path):
    append_curve_point(tmp_path, {"step": 4, "r_bbels": 0.5})
    append_curve_point(tmp_path, {"step": 2, "r_bbels": 0.4})
    append_curve_point(tmp_path, {"step": 4, "r_bbels": 0.6})
    assert load_curve(tmp_path)["points"] == [{"step": 2, "r_bbels": 0.4}, {"step": 4, "r_bbels": 0.6}]
