"""What a Lab network predicts, and how its output becomes a clean-image estimate.

With ``x_t = sqrt(ā) x0 + sqrt(1 − ā) ε`` (the cosine ``ā(t)`` of :mod:`core.score.schedules`):

* ``"epsilon"`` – the network predicts the noise ``ε``; ``x0 = (x_t − sqrt(1 − ā) ε̂) / sqrt(ā)``. Simple, but at
  the first step of the grid (``ā(1) ≈ 1.5·10⁻⁴``) the estimate is the output amplified about 81×.
* ``"v"`` – the network predicts ``v = sqrt(ā) ε − sqrt(1 − ā) x0`` (Salimans & Ho 2022);
  ``x0 = sqrt(ā) x_t − sqrt(1 − ā) v̂``: well conditioned at every noise level, and its MSE is the x0 error
  weighted by ``1 / (1 − ā)``, which keeps the low-noise steps in view.
* ``"x0"`` – the network predicts ``x0`` directly.
"""

from __future__ import annotations

import logging

import torch

from core.errors import BadInputError

logger = logging.getLogger(__name__)

PREDICTIONS: tuple[str, ...] = ("epsilon", "v", "x0")
DEFAULT_PREDICTION = "epsilon"


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise BadInputError(f"Unknown prediction {prediction!r}: choose {', '.join(PREDICTIONS)}.")
    return prediction


def model_prediction(model: torch.nn.Module) -> str:
    """The prediction a network was trained for (older networks without the setting predict ε)."""
    return check_prediction(str(getattr(model, "prediction", DEFAULT_PREDICTION)))


def training_target(prediction: str, x0: torch.Tensor, noise: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """The regression target for ``x_t = sqrt(ab) x0 + sqrt(1 − ab) noise`` (``ab`` broadcastable)."""
    check_prediction(prediction)
    if prediction == "epsilon":
        return noise
    if prediction == "v":
        return ab.sqrt() * noise - (1.0 - ab).sqrt() * x0
    return x0


def x0_from_output(prediction: str, x_t: torch.Tensor, output: torch.Tensor, ab: float | torch.Tensor) -> torch.Tensor:
    """The clean-image estimate from the network's ``output`` at ``x_t`` (not clamped)."""
    check_prediction(prediction)
    ab_t = torch.as_tensor(ab, dtype=x_t.dtype, device=x_t.device)
    if prediction == "epsilon":
        return (x_t - (1.0 - ab_t).sqrt() * output) / ab_t.sqrt()
    if prediction == "v":
        return ab_t.sqrt() * x_t - (1.0 - ab_t).sqrt() * output
    return output
