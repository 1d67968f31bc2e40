"""The training curve of a Lab network: loss, and its agreement with score machines, as it trains.

A :class:`Probe` fixes a few seeds (noise and class as in :mod:`core.lab.compare`) and runs the score
machines on them once, exactly; every time it is called with a network it samples that network from the
same noise and returns the Pearson r of each seed's image with each machine's. :func:`core.lab.train.train`
calls it every ``probe_every`` steps and keeps the points in ``training_curve.json`` of the model folder, so
a training run in the background (and its resumptions) can be watched.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import BadInputError
from core.lab.calibrate import sample_labels
from core.lab.checkpoint import read_json, write_json
from core.lab.compare import pearson_r
from core.lab.ddim import ddim_sample, seeded_noise
from core.score import MACHINE_KINDS, sample

logger = logging.getLogger(__name__)

CURVE_FILE = "training_curve.json"


class Probe:
    """Agreement of a network with score machines on fixed seeds (machines run once, exactly).

    Args:
        library: ``(N, C, S, S)`` training images in ``[-1, 1]``; ``labels`` ``(N,)`` for a
            class-conditional network (``conditional=True``).
        seeds: the seeds to sample (a handful: the machines run once, the network at every call).
        patch_sizes: the local machines' patch size per step (one schedule for all of them).
        kinds: machine kinds (``is``, ``ls``, ``els``, ``bbels``).
    """

    def __init__(
        self,
        library: torch.Tensor,
        labels: torch.Tensor | None,
        seeds: Sequence[int],
        patch_sizes: Sequence[int],
        kinds: Sequence[str] = ("is", "bbels"),
        conditional: bool = True,
    ) -> None:
        if not seeds:
            raise BadInputError("The training curve needs at least one seed.")
        for kind in kinds:
            if kind not in MACHINE_KINDS:
                raise BadInputError(f"Unknown machine kind {kind!r}. Valid kinds: {', '.join(MACHINE_KINDS)}.")
        self.seeds = [int(s) for s in seeds]
        self.patch_sizes = [int(p) for p in patch_sizes]
        self.steps = len(self.patch_sizes)
        self.kinds = list(kinds)
        channels, size = int(library.shape[1]), int(library.shape[2])
        self.class_labels = sample_labels(self.seeds, labels, conditional and labels is not None)
        self.noise = seeded_noise(self.seeds, channels, size)
        self.images: dict[str, torch.Tensor] = {}
        for kind in self.kinds:
            result = sample(
                library,
                self.noise,
                kind,
                self.patch_sizes if kind != "is" else [1] * self.steps,
                labels=labels if self.class_labels is not None else None,
                class_labels=self.class_labels,
            )
            self.images[kind] = result.images.cpu()

    def describe(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "kinds": self.kinds, "patch_sizes": self.patch_sizes, "steps": self.steps}

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, Any]:
        """``{"r_<kind>": median r, "r_<kind>_all": per-seed r}`` for every machine."""
        device = next(model.parameters()).device
        labels = self.class_labels.to(device) if self.class_labels is not None else None
        net = ddim_sample(model, self.noise.to(device), self.steps, labels).images.cpu()
        point: dict[str, Any] = {}
        for kind, images in self.images.items():
            r = [pearson_r(net[i], images[i]) for i in range(len(self.seeds))]
            point[f"r_{kind}"] = round(statistics.median(r), 4)
            point[f"r_{kind}_all"] = [round(v, 4) for v in r]
        return point


def load_curve(folder: Path) -> dict[str, Any] | None:
    """``{"probe": …, "points": [...]}`` of a model folder, or None when it has no curve."""
    path = Path(folder) / CURVE_FILE
    if not path.is_file():
        return None
    return read_json(path)


def start_curve(folder: Path, probe: Probe) -> None:
    """A new, empty curve for a training that starts from scratch."""
    write_json(Path(folder) / CURVE_FILE, {"probe": probe.describe(), "points": []})


def append_curve_point(folder: Path, point: dict[str, Any]) -> None:
    """Add ``point`` (it replaces an earlier point of the same step: a resumed run measured it again)."""
    curve = load_curve(folder) or {"probe": {}, "points": []}
    points = [p for p in curve.get("points", []) if p.get("step") != point.get("step")]
    points.append(point)
    curve["points"] = sorted(points, key=lambda p: int(p.get("step", 0)))
    write_json(Path(folder) / CURVE_FILE, curve)
