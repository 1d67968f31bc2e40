"""The local score engine: training-free image generation from a reference library.

It runs one of the Kamb & Ganguli score machines (:mod:`core.score`) with a deterministic DDIM
sampler. Every pixel of the result is traceable to the library patch it came from; those
sources are returned as arrays with each image.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from PIL import Image

from core import config
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
from core.errors import BadInputError, ResourceError
from core.images import from_tensor
from core.libraries import LibraryManager, LibraryTensor
from core.resources import available_memory_bytes
from core.score import GRIDS, MACHINE_KINDS, estimate_cost, patch_schedule, sample, sampling_plan, seeded_noise
from core.score.approximate import default_top_k, indexes_missing, uses_index
from core.score.cost import Cost
from core.score.schedules import REFERENCE_STEPS
from core.templates.formats import LOCAL_SCORE_SIZES

logger = logging.getLogger(__name__)

SIZES = LOCAL_SCORE_SIZES
MAX_COUNT = 16


@dataclass
class LocalScoreRequest(GenerationRequest):
    """Settings of the local score engine."""

    library: str = "faces"
    machine: str = "bbels"
    size: int = 32
    preset: str = "balanced"
    steps: int = 20
    #: class-conditional sampling: a label name of the library, "random" (a label per image
    #: drawn from its seed) or None (unconditional)
    label: str | None = None
    #: approximate mode (faster, not exact): after the first steps each pixel compares with the
    #: nearest lists of a patch index (els, bbels on CPU at small sizes), or each image with the
    #: ``top_k`` library images it has used most so far (the other machines, and larger sizes; see
    #: :mod:`core.score.approximate`); ``top_k=None``: by the image size (``default_top_k``)
    approximate: bool = False
    top_k: int | None = None
    #: time grid: "uniform" (one step per patch size, t = 1 … 0) or "reference" (the authors' grid:
    #: 19 steps at t = 0.95 … 0.05 on the 20-step schedule; ``steps`` is then 20)
    grid: str = "uniform"

    def validate(self) -> None:
        if self.machine not in MACHINE_KINDS:
            raise BadInputError(f"Unknown machine {self.machine!r}. Choose one of: {', '.join(MACHINE_KINDS)}.")
        if not 8 <= int(self.size) <= 128:
            raise BadInputError(f"Image size {self.size} px is not supported: choose between 8 and 128 px.")
        if not 1 <= int(self.count) <= MAX_COUNT:
            raise BadInputError(f"Number of images must be between 1 and {MAX_COUNT} (got {self.count}).")
        self.check_seed()
        if not 2 <= int(self.steps) <= 200:
            raise BadInputError(f"Steps must be between 2 and 200 (got {self.steps}).")
        if self.approximate and self.top_k is not None and not 1 <= int(self.top_k) <= 100_000:
            raise BadInputError(f"top_k must be between 1 and 100000 library images (got {self.top_k}).")
        if self.grid not in GRIDS:
            raise BadInputError(f"Unknown time grid {self.grid!r}: choose {' or '.join(GRIDS)}.")


class LocalScoreEngine(Engine):
    """Generates with the equivariant local score machines; no trained weights needed."""

    name = "local-score"
    label = "Local score (offline, no model needed)"

    def __init__(self, libraries: LibraryManager | None = None, device: str | None = None) -> None:
        self.libraries = libraries or LibraryManager()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    def plan(self, request: LocalScoreRequest) -> dict:
        """Check a request before running it: the work it needs and whether it fits in memory.

        The studio makes a request's images one after another (:func:`core.engines.saving.generate_and_save`:
        each is in the gallery before the next starts), so the estimate is one image's memory and
        ``count`` times one image's time, and the fast-draft choice is made for one image.
        """
        request.validate()
        info = self.libraries.ensure(request.library)
        if info.count == 0:
            raise BadInputError(f"Library {info.title!r} is empty: add images on the Libraries page first.")
        steps = REFERENCE_STEPS if request.grid == "reference" else int(request.steps)
        full = patch_schedule(request.preset, int(request.size), steps)
        schedule = [p for _, _, p in sampling_plan(request.grid, full)]  # the sizes the machine runs
        images = int(request.count)
        args = (info.count, info.channels, int(request.size), 1, request.machine, schedule)
        cost = _times(estimate_cost(*args), images)
        approximate = bool(request.approximate)
        needed = cost.peak_bytes
        preparing = False
        method = None
        if approximate:
            method, draft, preparing = self._choose_draft(request, args, images, cost, schedule)
            approximate = method is not None
            if draft is not None:
                cost = draft
                needed = draft.peak_bytes + (draft.index_build_bytes if preparing else 0)
            else:
                logger.info("a fast draft would not be faster or lighter than exact here: running exact")
        available = available_memory_bytes(self.device)
        if needed > 0.8 * available:
            raise ResourceError(
                f"This needs more memory than this computer has free (about {needed / 1e9:.1f} GB, "
                f"{available / 1e9:.1f} GB free). Choose a smaller image size or a smaller library.",
                detail=f"Planned peak {needed:,} bytes against {available:,} bytes available on {self.device} "
                f"(machine {request.machine}, {request.size} px, patch sizes {schedule}).",
            )
        return {
            "patch_sizes": schedule,
            "schedule": full,
            "cost": cost,
            "library": info,
            "approximate": approximate,
            "draft": method,
            "preparing": preparing,
        }

    def _choose_draft(
        self, request: LocalScoreRequest, args: tuple, images: int, exact: Cost, schedule: list[int]
    ) -> tuple[str | None, Cost | None, bool]:
        """The fast draft to run: ``(method, its cost, whether a patch index must be built first)``, or
        ``(None, None, False)`` to run exact.

        A draft is only worth it where it wins on time and memory; otherwise the run is exact. The
        patch index (``els``/``bbels`` on a CPU) comes first where it wins: its drafts follow the exact
        images closely (r = 1.000 to three places at 32 px); elsewhere (slower than exact at 64 px and
        up, heavier on most ``bbels`` settings) the candidate images: r ≥ 0.999 on ``photos`` at 64 px
        (BENCHMARKS.md, issue 17). Building a patch index is a separate, one-time step (announced on the page); its
        memory counts against the free memory.
        """
        for method in ("index", "images"):
            if method == "index" and not uses_index(request.machine, self.device):
                continue
            top_k = int(request.top_k) if request.top_k is not None else default_top_k(args[0], int(request.size))
            draft = _times(estimate_cost(*args, approximate_top_k=top_k, indexed=method == "index"), images)
            if draft.seconds_estimate < exact.seconds_estimate and draft.peak_bytes <= exact.peak_bytes:
                preparing = bool(draft.index_build_seconds) and self._indexes_missing(request, schedule)
                return method, draft, preparing
        return None, None, False

    def _indexes_missing(self, request: LocalScoreRequest, schedule: list[int]) -> bool:
        lib = self.libraries.load(request.library, int(request.size))
        labels, class_labels, _ = self._labels(request, lib)
        return indexes_missing(
            lib.images, request.machine, schedule, labels, class_labels, int(request.count), config.score_indexes_dir()
        )

    def generate(
        self,
        request: GenerationRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        on_image: ImageCallback | None = None,
    ) -> list[GeneratedImage]:
        """Make the images as one batch (all finish at the last step; ``on_image`` then gets each)."""
        if not isinstance(request, LocalScoreRequest):
            raise BadInputError("The local score engine needs a LocalScoreRequest.")
        plan = self.plan(request)
        schedule: list[int] = plan["schedule"]  # the sizes the grid picks from (all of them on "uniform")
        lib = self.libraries.load(request.library, int(request.size))
        labels, class_labels, label_names = self._labels(request, lib)
        seeds = request.seeds()
        noise = seeded_noise(seeds, lib.images.shape[1], int(request.size))

        def on_index_build(step: int, total: int, patch_size: int) -> None:
            if on_progress is not None:
                del patch_size  # one notice per patch size; the words stay the same
                message = "Preparing this library for fast drafts, only needed the first time…"
                on_progress(Progress(step=step, total_steps=total, message=message))

        def on_step(step: int, total: int, x0: torch.Tensor) -> None:
            if on_progress is not None:
                preview = _grid(x0)
                on_progress(Progress(step=step, total_steps=total, message=f"Step {step} of {total}", preview=preview))

        result = sample(
            lib.images,
            noise,
            request.machine,
            schedule,
            labels=labels,
            class_labels=class_labels,
            on_step=on_step,
            should_cancel=(lambda: cancel.cancelled) if cancel else None,
            device=self.device,
            approximate=plan["approximate"],
            top_k=int(request.top_k) if request.top_k is not None else None,
            index_dir=config.score_indexes_dir(),
            on_index_build=on_index_build,
            grid=request.grid,
            draft=plan["draft"],
        )
        base = asdict(request)
        if request.grid == "uniform":
            base.pop("grid", None)  # the default: older images' settings stay as they were
        else:
            base["steps"] = len(result.patch_sizes)
        indexed = plan["draft"] == "index"
        if request.approximate and plan["approximate"]:
            base["approximate_method"] = "patch index" if indexed else "candidate images"
        elif request.approximate:
            base["approximate_method"] = "exact (a fast draft would not be quicker or lighter at this setting)"
        if not plan["approximate"] or indexed:
            base.pop("top_k", None)
        base.pop("count", None)
        outputs = []
        for i, seed in enumerate(seeds):
            params = dict(
                base,
                seed=seed,
                engine=self.name,
                sampler="DDIM",
                model=request.machine,
                width=int(request.size),
                height=int(request.size),
                patch_sizes=list(result.patch_sizes),
                library_count=len(lib.item_ids),
            )
            if class_labels is not None:
                params["label"] = label_names[int(class_labels[i])]
            if "top_k" in params and params["top_k"] is None:  # the number this image kept
                allowed = len(lib.item_ids)
                if class_labels is not None:
                    allowed = int((lib.labels == class_labels[i]).sum())
                params["top_k"] = default_top_k(allowed, int(request.size))
            outputs.append(
                GeneratedImage(
                    image=from_tensor(result.images[i]),
                    seed=seed,
                    engine=self.name,
                    params=params,
                    arrays=_arrays(result, i, lib),
                )
            )
        return emit_all(outputs, on_image)

    @staticmethod
    def _labels(request: LocalScoreRequest, lib: LibraryTensor):
        if not request.label:
            return None, None, lib.label_names
        if not lib.label_names or bool((lib.labels < 0).all()):
            raise BadInputError(
                "This library has no classes (labels come from sub-folder names), so it cannot be sampled "
                "by class. Choose 'Any' as class."
            )
        present = sorted({int(v) for v in lib.labels.tolist() if v >= 0})
        if request.label == "random":
            picks = [present[np.random.default_rng(seed).integers(len(present))] for seed in request.seeds()]
        else:
            if request.label not in lib.label_names:
                raise BadInputError(
                    f"Class {request.label!r} is not in this library. Classes: {', '.join(lib.label_names)}."
                )
            picks = [lib.label_names.index(request.label)] * request.count
        return lib.labels, torch.tensor(picks, dtype=torch.int64), lib.label_names


def _times(cost: Cost, images: int) -> Cost:
    """The cost of ``images`` one-image runs made one after another: the work adds up, the memory
    does not; a patch index is built once."""
    return replace(
        cost, flops=cost.flops * images, seconds_estimate=cost.seconds_estimate * images, logits=cost.logits * images
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def describe_estimate(cost: Cost, exact_instead: bool = False, preparing: bool = False) -> str:
    """The estimate shown before a run, in words: time and memory on this machine; ``preparing``:
    the run builds the library's patch index first (its time is announced apart)."""
    memory = cost.peak_bytes / 1e9
    amount = f"{memory:.1f} GB" if memory >= 0.1 else "under 0.1 GB"
    text = f"Estimated time: about {_duration(cost.seconds_estimate)} on this machine, using {amount} of memory."
    if exact_instead:
        text += " A fast draft would not be quicker or lighter at this setting, so the exact images are made."
    if preparing and cost.index_build_seconds:
        text += (
            f" The first fast draft with this library and size takes about {_duration(cost.index_build_seconds)}"
            " more to prepare the library (only once)."
        )
    return text


def _grid(batch: torch.Tensor) -> Image.Image:
    """A small horizontal strip of the current predictions, for the live preview."""
    tiles = [from_tensor(x.clamp(-1, 1)) for x in batch]
    width = sum(t.width for t in tiles) + 2 * (len(tiles) - 1)
    strip = Image.new(tiles[0].mode, (width, tiles[0].height), 255 if tiles[0].mode == "L" else (255, 255, 255))
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + 2
    return strip


def _arrays(result, i: int, lib: LibraryTensor) -> dict[str, np.ndarray]:
    """Per-image side arrays: sources refer to library items by id, so they survive library edits."""
    step_sources = result.step_sources[:, i].cpu().numpy()
    used = np.unique(np.concatenate([result.sources[i, ..., 0].cpu().numpy().ravel(), step_sources[..., 0].ravel()]))
    return {
        "sources": result.sources[i].cpu().numpy().astype(np.int32),
        "entropy": result.entropy[i].cpu().numpy().astype(np.float32),
        "step_sources": step_sources.astype(np.int32),
        "step_entropy": result.step_entropy[:, i].cpu().numpy().astype(np.float16),
        "step_x0": result.step_x0[:, i].cpu().numpy().astype(np.float16),
        "patch_sizes": np.asarray(result.patch_sizes, dtype=np.int32),
        "used_indices": used.astype(np.int32),
        "used_item_ids": np.asarray([lib.item_ids[j] for j in used], dtype=np.str_),
    }
