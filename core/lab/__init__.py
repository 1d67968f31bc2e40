"""Creativity Lab: train a small diffusion network and test how well local score machines explain it.

Kamb & Ganguli (ICML 2025) showed that the equivariant local score (ELS) machine, with patch sizes
calibrated to a trained convolutional network, predicts that network's samples image by image.

* :func:`train` / :func:`train_library` – ε-, v- or x0-prediction training (:mod:`core.lab.parameterization`,
  cosine schedule of :mod:`core.score`), resumable, checkpoints as safetensors + JSON (:mod:`core.lab.checkpoint`),
  with a training curve against exact machines (:class:`Probe`, ``training_curve.json``).
* :class:`ConvUNet`, :class:`ResNetDenoiser` – the two network kinds (:data:`MODEL_KINDS`).
* :func:`ddim_sample` – the network sampled by the same deterministic DDIM as :func:`core.score.sample`.
* :func:`calibrate_scales` – patch size per step that best matches the network (``scales.json``).
* :func:`run_comparison` – network vs IS / LS / ELS from the same noise: Pearson r, r², ELS > IS.
* :func:`calibrate_saved_model` / :func:`compare_saved_model` – the same on a saved model folder and its library.
"""

from core.lab.calibrate import Calibration, calibrate_scales, load_scales, save_scales
from core.lab.checkpoint import ModelConfig, load_config, load_model, save_model
from core.lab.compare import ComparisonTable, comparison_grid, pearson_r, run_comparison
from core.lab.curve import Probe, load_curve
from core.lab.ddim import NetworkSample, ddim_sample, predict_x0, seeded_noise
from core.lab.models import MODEL_KINDS, build_model
from core.lab.resnet import ResNetDenoiser
from core.lab.train import DEFAULT_HPARAMS, TrainConfig, TrainProgress, TrainResult, train, train_library
from core.lab.unet import ConvUNet
from core.lab.workflow import calibrate_saved_model, compare_saved_model

__all__ = [
    "DEFAULT_HPARAMS",
    "MODEL_KINDS",
    "Calibration",
    "ComparisonTable",
    "ConvUNet",
    "ModelConfig",
    "NetworkSample",
    "Probe",
    "ResNetDenoiser",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "build_model",
    "calibrate_saved_model",
    "calibrate_scales",
    "compare_saved_model",
    "comparison_grid",
    "ddim_sample",
    "load_config",
    "load_curve",
    "load_model",
    "load_scales",
    "pearson_r",
    "predict_x0",
    "run_comparison",
    "save_model",
    "save_scales",
    "seeded_noise",
    "train",
    "train_library",
]
