"""The trained-model engine of the Creativity Lab: a small network trained in the studio, sampled by DDIM.

It loads a model folder written by :mod:`core.lab` (safetensors + JSON; default: the committed
demo model, a UNet trained on the built-in "digits" library) and samples it with the same 20-step
deterministic DDIM as the score machines. With ``compare_els`` (or :meth:`TrainedModelEngine.predict_els`)
it also runs the boundary-broken ELS machine from the same noise with the model's calibrated patch
sizes, i.e. the machine's *prediction* of what the network makes.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.engines.base import (
    CancelToken,
    Engine,
    GeneratedImage,
    GenerationRequest,
    ImageCallback,
    Progress,
    ProgressCallback,
    emit_all,
)
from core.errors import BadInputError
from core.images import from_tensor
from core.lab.calibrate import Calibration, load_scales
from core.lab.checkpoint import SCALES_FILE, ModelConfig, load_model
from core.lab.compare import pearson_r
from core.lab.ddim import ddim_sample, seeded_noise
from core.lab.demo import DEMO_MODEL_DIR
from core.libraries import LibraryManager
from core.score import GRIDS, sample
from core.score.schedules import REFERENCE_STEPS

logger = logging.getLogger(__name__)

MAX_COUNT = 64


@dataclass
class TrainedModelRequest(GenerationRequest):
    """Settings of the trained-model engine.

    ``label``: a label name of the model, ``"random"`` (one per image, drawn from its seed) or None
    (unconditional: the model's null class). ``compare_els`` also runs the calibrated bbELS machine
    from the same noise and attaches its image (``arrays["els_image"]``) and ``params["els_r"]``.
    """

    model_path: str = str(DEMO_MODEL_DIR)
    label: str | None = None
    steps: int = 20
    compare_els: bool = False
    #: time grid of the network and the machine: "uniform" or "reference" (the authors' 19 steps at
    #: t = 0.95 … 0.05; ``steps`` is then ignored), see :func:`core.score.sampling_plan`
    grid: str = "uniform"

    def validate(self) -> None:
        if self.grid not in GRIDS:
            raise BadInputError(f"Unknown time grid {self.grid!r}: choose {' or '.join(GRIDS)}.")
        if not 1 <= int(self.count) <= MAX_COUNT:
            raise BadInputError(f"Number of images must be between 1 and {MAX_COUNT} (got {self.count}).")
        self.check_seed()
        if not 2 <= int(self.steps) <= 200:
            raise BadInputError(f"Steps must be between 2 and 200 (got {self.steps}).")


def _settings(request: TrainedModelRequest) -> dict:
    """The request's settings as an image records them (the default grid is left out, as before)."""
    base = asdict(request)
    base.pop("count", None)
    if request.grid == "uniform":
        base.pop("grid", None)
    else:
        base["steps"] = REFERENCE_STEPS - 1
    return base


@dataclass
class LoadedModel:
    network: nn.Module
    config: ModelConfig
    scales: Calibration | None
    path: Path


def resample_schedule(sizes: list[int], steps: int) -> list[int]:
    """Nearest-neighbour resampling of a patch-size schedule to ``steps`` entries (keeps both ends)."""
    if steps == len(sizes):
        return list(sizes)
    if steps == 1:
        return [sizes[0]]
    last = len(sizes) - 1
    return [sizes[int(math.floor(i * last / (steps - 1) + 0.5))] for i in range(steps)]


class TrainedModelEngine(Engine):
    """Generates with a small network trained in the Creativity Lab (DDIM, deterministic per seed)."""

    name = "trained"
    label = "Trained model (Creativity Lab)"

    def __init__(self, libraries: LibraryManager | None = None, device: str | None = None) -> None:
        self.libraries = libraries or LibraryManager()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def load(self, path: str | Path) -> LoadedModel:
        """The model folder at ``path`` (cached per resolved path)."""
        folder = Path(path).expanduser().resolve()
        key = str(folder)
        with self._lock:
            if key not in self._models:
                if not folder.is_dir():
                    raise BadInputError(f"No trained model at {folder}. Train one in the Creativity Lab first.")
                network, config = load_model(folder, self.device)
                scales = load_scales(folder) if (folder / SCALES_FILE).is_file() else None
                self._models[key] = LoadedModel(network, config, scales, folder)
                logger.info("loaded trained model %s (%s, step %d)", folder, config.model_kind, config.step)
            return self._models[key]

    def describe(self, path: str | Path = DEMO_MODEL_DIR) -> dict:
        """What the UI shows about a model: kind, size, labels, training steps, calibrated sizes."""
        loaded = self.load(path)
        cfg = loaded.config
        return {
            "model_kind": cfg.model_kind,
            "size": cfg.size,
            "channels": cfg.channels,
            "label_names": list(cfg.label_names),
            "library": cfg.library,
            "step": cfg.step,
            "parameters": cfg.info.get("parameters"),
            "training_seconds": cfg.info.get("training_seconds"),
            "train_images": cfg.info.get("train_images"),
            "patch_sizes": loaded.scales.patch_sizes if loaded.scales else None,
        }

    def _class_labels(self, request: TrainedModelRequest, config: ModelConfig) -> torch.Tensor | None:
        if not request.label:
            return None
        if config.num_classes == 0:
            raise BadInputError("This model was trained without classes; choose 'Any' as class.")
        if request.label == "random":
            picks = [int(np.random.default_rng(seed).integers(config.num_classes)) for seed in request.seeds()]
        elif request.label in config.label_names:
            picks = [config.label_names.index(request.label)] * int(request.count)
        else:
            raise BadInputError(
                f"Class {request.label!r} is not in this model. Classes: {', '.join(config.label_names)}."
            )
        return torch.tensor(picks, dtype=torch.long)

    def generate(
        self,
        request: GenerationRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        on_image: ImageCallback | None = None,
    ) -> list[GeneratedImage]:
        """Make the images as one batch (all finish at the last step; ``on_image`` then gets each)."""
        if not isinstance(request, TrainedModelRequest):
            raise BadInputError("The trained-model engine needs a TrainedModelRequest.")
        request.validate()
        loaded = self.load(request.model_path)
        cfg = loaded.config
        class_labels = self._class_labels(request, cfg)
        seeds = request.seeds()
        noise = seeded_noise(seeds, cfg.channels, cfg.size)

        # with compare_els the network's steps fill the first half of the bar, the patch machine's the second
        half = 500

        def on_step(step: int, total: int, x0: torch.Tensor) -> None:
            if on_progress is None:
                return
            if request.compare_els:
                on_progress(
                    Progress(
                        step=round(half * step / total),
                        total_steps=2 * half,
                        message=f"The network is drawing: step {step} of {total}",
                    )
                )
            else:
                on_progress(Progress(step=step, total_steps=total, message=f"Step {step} of {total}"))

        def on_machine_step(p: Progress) -> None:
            if on_progress is not None:
                on_progress(
                    Progress(
                        step=half + round(half * p.step / p.total_steps),
                        total_steps=2 * half,
                        message=f"The patch machine is drawing the same pictures: step {p.step} of {p.total_steps}",
                    )
                )

        run = ddim_sample(
            loaded.network,
            noise.to(self.device),
            int(request.steps),
            class_labels,
            on_step=on_step,
            should_cancel=(lambda: cancel.cancelled) if cancel else None,
            grid=request.grid,
        )
        images = run.images.cpu()
        els = None
        if request.compare_els:
            els = self._els(loaded, noise, class_labels, int(request.steps), cancel, on_machine_step, grid=request.grid)
        base = _settings(request)
        outputs = []
        for i, seed in enumerate(seeds):
            params = dict(
                base,
                seed=seed,
                engine=self.name,
                sampler="DDIM",
                model=cfg.model_kind,
                model_step=cfg.step,
                width=cfg.size,
                height=cfg.size,
            )
            if class_labels is not None:
                params["label"] = cfg.label_names[int(class_labels[i])]
            arrays: dict[str, np.ndarray] = {}
            if els is not None:
                params["els_r"] = round(pearson_r(images[i], els[0][i]), 4)
                params["patch_sizes"] = els[1]
                arrays["els_image"] = els[0][i].numpy().astype(np.float32)
            outputs.append(GeneratedImage(from_tensor(images[i]), seed, self.name, params, arrays))
        return emit_all(outputs, on_image)

    def predict_els(
        self,
        request: TrainedModelRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> list[GeneratedImage]:
        """The calibrated bbELS machine's images from the same noise and labels as :meth:`generate`."""
        request.validate()
        loaded = self.load(request.model_path)
        cfg = loaded.config
        class_labels = self._class_labels(request, cfg)
        seeds = request.seeds()
        noise = seeded_noise(seeds, cfg.channels, cfg.size)
        images, schedule = self._els(
            loaded, noise, class_labels, int(request.steps), cancel, on_progress, grid=request.grid
        )
        outputs = []
        for i, seed in enumerate(seeds):
            params = dict(
                _settings(request),
                seed=seed,
                engine=self.name,
                sampler="DDIM",
                model="bbels",
                patch_sizes=schedule,
                library=cfg.library,
                width=cfg.size,
                height=cfg.size,
            )
            if class_labels is not None:
                params["label"] = cfg.label_names[int(class_labels[i])]
            outputs.append(GeneratedImage(from_tensor(images[i]), seed, self.name, params))
        return outputs

    def _els(
        self,
        loaded: LoadedModel,
        noise: torch.Tensor,
        class_labels: torch.Tensor | None,
        steps: int,
        cancel: CancelToken | None,
        on_progress: ProgressCallback | None = None,
        grid: str = "uniform",
    ) -> tuple[torch.Tensor, list[int]]:
        cfg = loaded.config
        if loaded.scales is None:
            raise BadInputError(f"The model at {loaded.path} has no calibrated patch sizes ({SCALES_FILE}).")
        if not cfg.library:
            raise BadInputError("This model does not say which library it was trained on.")
        lib = self.libraries.load(cfg.library, cfg.size, cfg.channels)
        schedule = resample_schedule(loaded.scales.patch_sizes, REFERENCE_STEPS if grid == "reference" else steps)

        def on_step(step: int, total: int, x0: torch.Tensor) -> None:
            if on_progress is not None:
                on_progress(Progress(step=step, total_steps=total, message=f"Patch machine step {step} of {total}"))

        result = sample(
            lib.images,
            noise,
            loaded.scales.kind,
            schedule,
            labels=lib.labels if class_labels is not None else None,
            class_labels=class_labels,
            on_step=on_step,
            should_cancel=(lambda: cancel.cancelled) if cancel else None,
            device=self.device,
            grid=grid,
        )
        return result.images.cpu(), schedule
