"""One-call helpers for the Lab page: calibrate or compare a saved model folder on its own library."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from core.errors import BadInputError
from core.lab.calibrate import Calibration, calibrate_scales, load_scales, save_scales
from core.lab.checkpoint import SCALES_FILE, ModelConfig, load_model
from core.lab.compare import ComparisonTable, run_comparison

logger = logging.getLogger(__name__)


def _library(config: ModelConfig, libraries: Any = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    from core.libraries import LibraryManager

    if not config.library:
        raise BadInputError("This model does not say which library it was trained on.")
    lib = (libraries or LibraryManager()).load(config.library, config.size, config.channels)
    has_labels = bool(lib.label_names) and bool((lib.labels >= 0).any())
    return lib.images, (lib.labels if has_labels else None)


def calibrate_saved_model(
    folder: str | Path, samples: int = 8, steps: int = 20, top_k: int | None = None, libraries: Any = None, **kwargs
) -> Calibration:
    """Calibrate the bbELS patch sizes of the model in ``folder`` on its library and save ``scales.json``."""
    model, config = load_model(Path(folder))
    images, labels = _library(config, libraries)
    calibration = calibrate_scales(model, images, labels, steps=steps, samples=samples, top_k=top_k, **kwargs)
    save_scales(Path(folder), calibration)
    return calibration


def compare_saved_model(
    folder: str | Path,
    seeds: Sequence[int],
    kinds: Sequence[str] = ("is", "ls", "bbels"),
    libraries: Any = None,
    **kwargs,
) -> ComparisonTable:
    """Compare the model in ``folder`` with the machines, using its calibrated ``scales.json``."""
    folder = Path(folder)
    if not (folder / SCALES_FILE).is_file():
        raise BadInputError("Calibrate this model first: it has no calibrated patch sizes yet.")
    model, config = load_model(folder)
    scales = load_scales(folder)
    images, labels = _library(config, libraries)
    return run_comparison(
        model, images, labels, seeds=seeds, patch_sizes=scales.patch_sizes, steps=scales.steps, kinds=kinds, **kwargs
    )
