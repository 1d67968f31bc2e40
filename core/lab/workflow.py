"""One-call helpers for the Lab page: calibrate or compare a saved model folder on its own library."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from core.errors import BadInputError
from core.lab.calibrate import Calibration, calibrate_scales, load_scales, save_scales, saved_schedules
from core.lab.checkpoint import SCALES_FILE, ModelConfig, load_model
from core.lab.compare import ComparisonTable, run_comparison, save_comparison

logger = logging.getLogger(__name__)


def _library(config: ModelConfig, libraries: Any = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    from core.libraries import LibraryManager

    if not config.library:
        raise BadInputError("This model does not say which library it was trained on.")
    lib = (libraries or LibraryManager()).load(config.library, config.size, config.channels)
    has_labels = bool(lib.label_names) and bool((lib.labels >= 0).any())
    return lib.images, (lib.labels if has_labels else None)


def calibrate_saved_model(
    folder: str | Path,
    samples: int = 8,
    steps: int = 20,
    top_k: int | None = None,
    libraries: Any = None,
    kind: str = "bbels",
    **kwargs,
) -> Calibration:
    """Calibrate the patch sizes of machine ``kind`` for the model in ``folder`` on its library and save
    them (``scales.json`` for bbELS, ``scales_<kind>.json`` otherwise)."""
    model, config = load_model(Path(folder))
    images, labels = _library(config, libraries)
    calibration = calibrate_scales(
        model, images, labels, steps=steps, samples=samples, kind=kind, top_k=top_k, **kwargs
    )
    save_scales(Path(folder), calibration)
    return calibration


def compare_saved_model(
    folder: str | Path,
    seeds: Sequence[int],
    kinds: Sequence[str] = ("is", "ls", "els", "bbels"),
    libraries: Any = None,
    save: bool = False,
    command: str | None = None,
    **kwargs,
) -> ComparisonTable:
    """Compare the model in ``folder`` with the machines, using its calibrated schedules.

    bbELS uses ``scales.json``; LS and ELS use their own ``scales_ls.json`` / ``scales_els.json``
    when the folder has them, else the bbELS schedule (the table's note says which). The machines
    run exactly unless ``approximate=True`` is passed. With ``save`` the table is also written to
    ``comparison.json`` in ``folder`` (with ``command`` and the run's wall time and environment).
    """
    folder = Path(folder)
    if not (folder / SCALES_FILE).is_file():
        raise BadInputError("Calibrate this model first: it has no calibrated patch sizes yet.")
    model, config = load_model(folder)
    scales = load_scales(folder)
    own = {k: c.patch_sizes for k, c in saved_schedules(folder).items() if k in kinds and c.steps == scales.steps}
    images, labels = _library(config, libraries)
    started = time.monotonic()
    table = run_comparison(
        model,
        images,
        labels,
        seeds=seeds,
        patch_sizes=scales.patch_sizes,
        steps=scales.steps,
        kinds=kinds,
        schedules=own,
        **kwargs,
    )
    if save:
        calibrations = {
            k: {"samples": c.samples, "top_k": c.top_k, "seconds": round(c.seconds, 1), "patch_sizes": c.patch_sizes}
            for k, c in saved_schedules(folder).items()
        }
        save_comparison(
            folder,
            table,
            command=command,
            wall_seconds=round(time.monotonic() - started, 1),
            model_step=config.step,
            library=config.library,
            size=config.size,
            calibrations=calibrations,
        )
    return table
