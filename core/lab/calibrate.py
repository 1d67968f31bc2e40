"""Scale calibration (Kamb & Ganguli 2025): which patch size makes a local score machine act like the network.

Along the trained network's own deterministic DDIM trajectories, at every step ``k`` and for every
candidate odd patch size ``P`` in ``1..2S-1``, the machine's clean-image estimate
``denoise(x_{t_k}, ā_k, library, kind, P)`` is compared with the network's by cosine similarity (per
sample, of the flattened images; the scores ``(sqrt(ā) x0 − x) / (1 − ā)`` differ from these only by
the shared ``x`` term). The calibrated size of step ``k`` maximises the median similarity over the
samples. The result is saved next to the model: ``scales.json`` for bbELS (the machine the Lab engine
runs), ``scales_<kind>.json`` for a separate LS or ELS calibration (:func:`scales_file`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import BadInputError
from core.lab.checkpoint import SCALES_FILE, read_json, write_json
from core.lab.ddim import ddim_sample, seeded_noise
from core.score import denoise
from core.score.approximate import choose_candidates
from core.score.schedules import alpha_bar

logger = logging.getLogger(__name__)

CalibrationCallback = Callable[[int, int, str], None]


@dataclass
class Calibration:
    """Calibrated patch sizes in sampling order (first = highest noise), one per DDIM step.

    ``similarity[k]`` is the best median cosine similarity at step ``k``; ``curves[k]`` maps every
    tried patch size to its median similarity; ``per_sample_best[k]`` is the median over samples of
    each sample's own best size (a robustness check).
    """

    kind: str
    steps: int
    size: int
    patch_sizes: list[int]
    similarity: list[float]
    curves: list[dict[int, float]] = field(default_factory=list)
    per_sample_best: list[float] = field(default_factory=list)
    samples: int = 0
    seconds: float = 0.0
    top_k: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "steps": self.steps,
            "size": self.size,
            "order": "sampling order: first entry = highest noise (t = 1)",
            "metric": "median over samples of the cosine similarity of machine and network x0 estimates",
            "patch_sizes": self.patch_sizes,
            "similarity": [round(s, 5) for s in self.similarity],
            "per_sample_best": self.per_sample_best,
            "curves": [{str(p): round(v, 5) for p, v in curve.items()} for curve in self.curves],
            "samples": self.samples,
            "top_k": self.top_k,
            "seconds": round(self.seconds, 1),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        sizes = [int(p) for p in data["patch_sizes"]]
        if not sizes or any(p < 1 or p % 2 == 0 for p in sizes):
            raise BadInputError("scales.json holds invalid patch sizes (they must be odd and at least 1).")
        return cls(
            kind=str(data.get("kind", "bbels")),
            steps=int(data.get("steps", len(sizes))),
            size=int(data.get("size", 0)),
            patch_sizes=sizes,
            similarity=[float(s) for s in data.get("similarity", [])],
            curves=[{int(p): float(v) for p, v in c.items()} for c in data.get("curves", [])],
            per_sample_best=[float(v) for v in data.get("per_sample_best", [])],
            samples=int(data.get("samples", 0)),
            seconds=float(data.get("seconds", 0.0)),
            top_k=None if data.get("top_k") is None else int(data["top_k"]),
        )


#: Machines a schedule can be calibrated for.
CALIBRATED_KINDS: tuple[str, ...] = ("bbels", "els", "ls")


def scales_file(kind: str = "bbels") -> str:
    """File name of a machine's calibrated schedule in a model folder: ``scales.json`` for bbELS,
    ``scales_els.json`` / ``scales_ls.json`` for a separate ELS / LS calibration."""
    if kind not in CALIBRATED_KINDS:
        raise BadInputError(f"Only {', '.join(CALIBRATED_KINDS)} have calibrated patch sizes (not {kind!r}).")
    return SCALES_FILE if kind == "bbels" else f"scales_{kind}.json"


def save_scales(folder: Path, calibration: Calibration) -> None:
    """Write ``calibration`` to the file of its machine kind (:func:`scales_file`) in ``folder``."""
    write_json(Path(folder) / scales_file(calibration.kind), calibration.to_json())


def load_scales(folder: Path, kind: str = "bbels") -> Calibration:
    """The calibration of machine ``kind`` saved in ``folder`` (``scales.json`` for bbELS)."""
    calibration = Calibration.from_json(read_json(Path(folder) / scales_file(kind)))
    if calibration.kind != kind:
        logger.warning("%s holds a %s calibration, used for %s", scales_file(kind), calibration.kind, kind)
    return calibration


def saved_schedules(folder: Path, kinds: Sequence[str] = CALIBRATED_KINDS) -> dict[str, Calibration]:
    """The calibrations among ``kinds`` that ``folder`` holds (kinds without a file are left out)."""
    folder = Path(folder)
    return {k: load_scales(folder, k) for k in kinds if k in CALIBRATED_KINDS and (folder / scales_file(k)).is_file()}


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample cosine similarity of ``(B, ...)`` tensors."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def candidate_sizes(size: int) -> list[int]:
    """All odd patch sizes ``1, 3, ..., 2·size − 1``."""
    return list(range(1, 2 * size, 2))


def sample_labels(seeds: Sequence[int], labels: torch.Tensor | None, conditional: bool) -> torch.Tensor | None:
    """Class label of the sample of each seed: ``present[seed % len(present)]`` over the classes present
    in ``labels`` (None when not conditional), so a seed always gets the same class."""
    if not conditional or labels is None:
        return None
    present = sorted({int(v) for v in labels.tolist() if v >= 0})
    if not present:
        return None
    return torch.tensor([present[int(s) % len(present)] for s in seeds], dtype=torch.long)


def _similarity(
    x: torch.Tensor,
    net_x0: torch.Tensor,
    ab: float,
    library: torch.Tensor,
    kind: str,
    patch_size: int,
    labels: torch.Tensor | None,
    class_labels: torch.Tensor | None,
    subsets: list[torch.Tensor] | None,
) -> torch.Tensor:
    """Per-sample cosine similarity of the machine's and the network's x0 estimates."""
    if subsets is None:
        machine_x0 = denoise(x, ab, library, kind, patch_size, labels, class_labels, device=x.device).x0
    else:
        machine_x0 = torch.cat(
            [denoise(x[b : b + 1], ab, library[m], kind, patch_size, device=x.device).x0 for b, m in enumerate(subsets)]
        )
    return cosine(machine_x0, net_x0)


@torch.no_grad()
def calibrate_scales(
    model: nn.Module,
    library: torch.Tensor,
    labels: torch.Tensor | None = None,
    steps: int = 20,
    samples: int = 8,
    kind: str = "bbels",
    sizes: Sequence[int] | None = None,
    seed: int = 10_000,
    search: str = "auto",
    top_k: int | None = None,
    on_progress: CalibrationCallback | None = None,
) -> Calibration:
    """Calibrate one patch size per DDIM step (see module docstring).

    Args:
        model: the trained ε-network (its ``num_classes`` > 0 makes it class-conditional; then
            each sample gets a class by :func:`sample_labels` and the machine only uses that class).
        library: ``(N, C, S, S)`` the training images in ``[-1, 1]``.
        labels: ``(N,)`` their labels (needed for a class-conditional model).
        steps: DDIM steps (20 as in the paper).
        samples: number of trajectories (seeds ``seed .. seed + samples - 1``).
        kind: machine kind to calibrate (``"bbels"``, ``"els"`` or ``"ls"``).
        sizes: candidate odd patch sizes (default all of ``1..2S−1``).
        search: ``"full"`` tries every candidate at every step; ``"coarse"`` tries every second
            candidate and then the neighbours of the best (about half the work, same answer when the
            similarity curve has a single peak); ``"auto"`` is ``"full"`` up to 16 candidates.
        top_k: faster, approximate: each sample's machine only uses its ``top_k`` library images
            (of its class) nearest to the network's estimate at that step (see
            :mod:`core.score.approximate`); None (default) is exact.
        on_progress: ``on_progress(step_done, steps, message)``.
    """
    if kind not in ("bbels", "els", "ls"):
        raise BadInputError(f"Scale calibration needs a local machine (bbels, els or ls), not {kind!r}.")
    if samples < 1:
        raise BadInputError(f"Calibration needs at least one sample (got {samples}).")
    started = time.monotonic()
    size, channels = int(library.shape[2]), int(library.shape[1])
    conditional = int(getattr(model, "num_classes", 0)) > 0
    if conditional and labels is None:
        raise BadInputError("This model is class-conditional: calibration needs the library labels.")
    candidates = sorted(set(int(s) for s in (sizes or candidate_sizes(size))))
    if kind == "els":
        candidates = [s for s in candidates if s <= 2 * size - 1]
    mode = ("full" if len(candidates) <= 16 else "coarse") if search == "auto" else search
    seeds = [seed + i for i in range(samples)]
    class_labels = sample_labels(seeds, labels, conditional)
    noise = seeded_noise(seeds, channels, size)
    device = next(model.parameters()).device
    run = ddim_sample(model, noise.to(device), steps, class_labels)
    machine_labels = labels if conditional else None
    patch_sizes, similarity, curves, per_sample_best = [], [], [], []
    for k in range(steps):
        ab = float(alpha_bar(run.times[k]))
        x, net_x0 = run.step_x[k], run.step_x0[k]
        subsets = None
        if top_k is not None:
            wanted = class_labels if machine_labels is not None else None
            subsets = choose_candidates(net_x0.cpu(), None, library, top_k, machine_labels, wanted)
        scores: dict[int, torch.Tensor] = {}
        if mode == "full":
            tries = list(candidates)
        else:
            tries = sorted(set(candidates[::2] + candidates[-1:]))
        for p in tries:
            scores[p] = _similarity(x, net_x0, ab, library, kind, p, machine_labels, class_labels, subsets)
        if mode != "full":
            best = max(scores, key=lambda p: float(scores[p].median()))
            i = candidates.index(best)
            for j in (i - 1, i + 1):
                if 0 <= j < len(candidates) and candidates[j] not in scores:
                    p = candidates[j]
                    scores[p] = _similarity(x, net_x0, ab, library, kind, p, machine_labels, class_labels, subsets)
        scores = {p: v.cpu() for p, v in scores.items()}
        curve = {p: float(v.median()) for p, v in sorted(scores.items())}
        best = max(curve, key=curve.__getitem__)
        tried = sorted(scores)
        table = torch.stack([scores[p] for p in tried])  # (P, B)
        own_best = torch.tensor(tried, dtype=torch.float64)[table.argmax(0)]
        patch_sizes.append(int(best))
        similarity.append(curve[best])
        curves.append(curve)
        per_sample_best.append(float(own_best.median()))
        logger.info("calibration step %d/%d: patch %d (median cosine %.4f)", k + 1, steps, best, curve[best])
        if on_progress is not None:
            on_progress(k + 1, steps, f"step {k + 1}: patch size {best}")
    return Calibration(
        kind=kind,
        steps=steps,
        size=size,
        patch_sizes=patch_sizes,
        similarity=similarity,
        curves=curves,
        per_sample_best=per_sample_best,
        samples=samples,
        seconds=time.monotonic() - started,
        top_k=top_k,
    )
