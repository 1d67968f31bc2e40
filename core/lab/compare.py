"""How well do the score machines predict what a trained network makes? (Kamb & Ganguli 2025, Table 1.)

From the same initial noise (and class label) the trained network and the IS, LS, ELS (circular) and
bbELS (boundary broken) machines each run the same deterministic DDIM; per seed the final images are
compared by Pearson correlation ``r`` (and ``r²``). :func:`run_comparison` returns a
:class:`ComparisonTable` with medians over seeds and the fraction of seeds where each machine beats IS;
:func:`comparison_grid` draws the images side by side. :func:`save_comparison` /
:func:`load_comparison` keep a table next to its model (``comparison.json``).
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from core.errors import BadInputError
from core.lab.calibrate import sample_labels
from core.lab.checkpoint import COMPARISON_FILE, read_json, write_json
from core.lab.ddim import ddim_sample, seeded_noise
from core.score import MACHINE_KINDS, sample
from core.score.approximate import uses_index

logger = logging.getLogger(__name__)

COLUMN_TITLES: dict[str, str] = {"net": "network", "is": "IS", "ls": "LS", "els": "ELS", "bbels": "bbELS"}

ComparisonCallback = Callable[[str, int, int], None]


def _join(names: list[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def pearson_r(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Pearson correlation of two images (all pixels flattened). 0.0 when either is constant."""
    x = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).ravel()
    y = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise BadInputError(f"Cannot correlate images of different sizes ({x.size} and {y.size} values).")
    x = x - x.mean()
    y = y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    if denom == 0.0:
        return 0.0
    return float(np.clip((x * y).sum() / denom, -1.0, 1.0))


def approximate_method(info: dict) -> str:
    """How the machines of an approximate comparison compared with the library, in words."""
    images = f"the {info.get('top_k')} most used library images per sample"
    if info.get("patch_index"):
        return f"each pixel with the nearest lists of a patch index for ELS / bbELS, {images} for the others"
    return images


@dataclass
class ComparisonTable:
    """Per-seed correlations of each machine with the network.

    ``r[kind][i]`` is the Pearson r of seed ``seeds[i]``'s machine image with the network's image.
    ``images`` (optional) holds the final images: ``"net"`` and each kind, ``(B, C, S, S)`` in [-1, 1].
    """

    kinds: list[str]
    seeds: list[int]
    class_labels: list[int] | None
    r: dict[str, list[float]]
    steps: int
    patch_sizes: list[int]
    info: dict[str, Any] = field(default_factory=dict)
    images: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def median_r(self, kind: str) -> float:
        return float(statistics.median(self.r[kind]))

    def median_r2(self, kind: str) -> float:
        return float(statistics.median(v * v for v in self.r[kind]))

    def mean_r(self, kind: str) -> float:
        return float(statistics.fmean(self.r[kind]))

    def min_r(self, kind: str) -> float:
        return float(min(self.r[kind]))

    def fraction_beats(self, kind: str, other: str) -> float:
        """Fraction of seeds where ``kind``'s r is higher than ``other``'s."""
        wins = sum(1 for a, b in zip(self.r[kind], self.r[other], strict=True) if a > b)
        return wins / max(1, len(self.seeds))

    def els_kind(self) -> str | None:
        return next((k for k in ("bbels", "els") if k in self.kinds), None)

    def exact(self) -> bool:
        """True when every machine ran exactly (no nearest-images approximation)."""
        return not self.info.get("approximate")

    def rows(self) -> list[dict[str, Any]]:
        """One row per machine: median r, median r², mean r, min r and (with IS) the fraction of
        seeds where it beats IS (None for IS itself)."""
        rows = []
        for kind in self.kinds:
            row: dict[str, Any] = {
                "machine": COLUMN_TITLES.get(kind, kind),
                "median r": self.median_r(kind),
                "median r²": self.median_r2(kind),
                "mean r": self.mean_r(kind),
                "min r": self.min_r(kind),
            }
            if "is" in self.kinds:
                row["beats IS"] = None if kind == "is" else self.fraction_beats(kind, "is")
            rows.append(row)
        return rows

    def schedule_note(self) -> str:
        """Which patch sizes each machine used, e.g. ``LS and bbELS: own calibration; ELS: the bbELS schedule``."""
        own = [k for k in self.kinds if k in self.info.get("own_schedule", [])]
        shared = [k for k in self.kinds if k != "is" and k not in own]
        shared_name = COLUMN_TITLES.get(self.info.get("shared_schedule", ""), "calibrated")
        parts = []
        if own:
            parts.append(_join([COLUMN_TITLES.get(k, k) for k in own]) + ": own calibrated patch sizes")
        if shared:
            parts.append(_join([COLUMN_TITLES.get(k, k) for k in shared]) + f": the {shared_name} schedule")
        return "; ".join(parts)

    def to_markdown(self) -> str:
        """A table like the paper's: median r and r² per machine, and how often each machine beats IS."""
        with_is = "is" in self.kinds
        header = "| machine | median r | median r² | mean r | min r |" + (" beats IS |" if with_is else "")
        lines = [header, "|---|---|---|---|---|" + ("---|" if with_is else "")]
        for row in self.rows():
            line = (
                f"| {row['machine']} | {row['median r']:.3f} | {row['median r²']:.3f} | "
                f"{row['mean r']:.3f} | {row['min r']:.3f} |"
            )
            if with_is:
                line += " — |" if row["beats IS"] is None else f" {row['beats IS']:.0%} |"
            lines.append(line)
        els = self.els_kind()
        note = f"\n{len(self.seeds)} seeds, {self.steps} DDIM steps"
        if els is not None and with_is:
            frac = self.fraction_beats(els, "is")
            note += f"; {COLUMN_TITLES[els]} beats IS on {frac:.0%} of seeds"
        if self.info.get("approximate"):
            note += f" (machines approximate after the first steps: {approximate_method(self.info)})"
        else:
            note += "; all machines exact"
        schedules = self.schedule_note()
        if schedules:
            note += f". Patch sizes: {schedules}"
        return "\n".join(lines) + note + "."

    @classmethod
    def merge(cls, tables: Sequence[ComparisonTable]) -> ComparisonTable:
        """One table from several runs over different seeds (same kinds, steps and patch sizes)."""
        if not tables:
            raise BadInputError("Nothing to merge.")
        first = tables[0]
        settings = ("approximate", "top_k", "schedules")
        for t in tables[1:]:
            if (t.kinds, t.steps, t.patch_sizes) != (first.kinds, first.steps, first.patch_sizes):
                raise BadInputError("Only comparisons with the same machines, steps and patch sizes can be merged.")
            if any(t.info.get(key) != first.info.get(key) for key in settings):
                raise BadInputError("Only comparisons run the same way (exact or approximate, same schedules) merge.")
        labels = None if any(t.class_labels is None for t in tables) else [v for t in tables for v in t.class_labels]
        return cls(
            kinds=list(first.kinds),
            seeds=[s for t in tables for s in t.seeds],
            class_labels=labels,
            r={k: [v for t in tables for v in t.r[k]] for k in first.kinds},
            steps=first.steps,
            patch_sizes=list(first.patch_sizes),
            info=dict(first.info),
        )

    @classmethod
    def join(cls, tables: Sequence[ComparisonTable]) -> ComparisonTable:
        """One table from runs of different machines on the same seeds (e.g. the slow ELS run apart).

        The runs must share seeds, labels, steps, the shared schedule and exact/approximate mode; a
        machine may appear in one run only. Machines come in the order of :data:`MACHINE_KINDS`.
        """
        if not tables:
            raise BadInputError("Nothing to join.")
        first = tables[0]
        kinds = [k for t in tables for k in t.kinds]
        if len(set(kinds)) != len(kinds):
            raise BadInputError("Each machine may come from one run only.")
        for t in tables[1:]:
            if (t.seeds, t.class_labels, t.steps, t.patch_sizes) != (
                first.seeds,
                first.class_labels,
                first.steps,
                first.patch_sizes,
            ):
                raise BadInputError("Only runs on the same seeds, labels, steps and patch sizes can be joined.")
            if any(t.info.get(key) != first.info.get(key) for key in ("approximate", "top_k", "shared_schedule")):
                raise BadInputError("Only runs made the same way (exact or approximate) can be joined.")
        order = sorted(kinds, key=lambda k: MACHINE_KINDS.index(k) if k in MACHINE_KINDS else len(MACHINE_KINDS))
        info = dict(first.info)
        info["schedules"] = {k: v for t in tables for k, v in t.info.get("schedules", {}).items()}
        info["own_schedule"] = [k for k in order if any(k in t.info.get("own_schedule", []) for t in tables)]
        info["seconds"] = {k: v for t in tables for k, v in t.info.get("seconds", {}).items()}
        return cls(
            kinds=order,
            seeds=list(first.seeds),
            class_labels=first.class_labels,
            r={k: list(t.r[k]) for t in tables for k in t.kinds},
            steps=first.steps,
            patch_sizes=list(first.patch_sizes),
            info=info,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ComparisonTable:
        return cls(
            kinds=list(data["kinds"]),
            seeds=[int(s) for s in data["seeds"]],
            class_labels=data.get("class_labels"),
            r={k: [float(v) for v in vs] for k, vs in data["r"].items()},
            steps=int(data["steps"]),
            patch_sizes=[int(p) for p in data["patch_sizes"]],
            info=dict(data.get("info", {})),
        )

    def to_json(self) -> dict[str, Any]:
        summary = {
            k: {
                "median_r": self.median_r(k),
                "median_r2": self.median_r2(k),
                "mean_r": self.mean_r(k),
                "min_r": self.min_r(k),
                "beats_is": self.fraction_beats(k, "is") if "is" in self.kinds and k != "is" else None,
            }
            for k in self.kinds
        }
        els = self.els_kind()
        return {
            "kinds": self.kinds,
            "seeds": self.seeds,
            "class_labels": self.class_labels,
            "steps": self.steps,
            "patch_sizes": self.patch_sizes,
            "r": self.r,
            "summary": summary,
            "els_beats_is": self.fraction_beats(els, "is") if els and "is" in self.kinds else None,
            "info": self.info,
        }


def run_comparison(
    model: nn.Module,
    library: torch.Tensor,
    labels: torch.Tensor | None,
    seeds: Sequence[int],
    patch_sizes: Sequence[int],
    steps: int = 20,
    kinds: Sequence[str] = ("is", "ls", "bbels"),
    ls_patch_sizes: Sequence[int] | None = None,
    schedules: Mapping[str, Sequence[int]] | None = None,
    patch_sizes_kind: str = "bbels",
    approximate: bool = False,
    top_k: int = 32,
    batch: int = 10,
    grid_path: Path | None = None,
    grid_rows: int = 8,
    keep_images: bool = True,
    on_progress: ComparisonCallback | None = None,
) -> ComparisonTable:
    """Compare the network with score machines from the same noise and labels, seed by seed.

    Args:
        model: the trained ε-network (class-conditional when its ``num_classes`` > 0: each seed then
            gets the class :func:`core.lab.calibrate.sample_labels` gives it, for the network and the machines).
        library: ``(N, C, S, S)`` the training images; ``labels`` ``(N,)`` their labels.
        seeds: one sample per seed; noise as :func:`core.lab.ddim.seeded_noise`.
        patch_sizes: machine patch size per step (the calibrated schedule), ``steps`` entries; used by
            every machine without its own entry in ``schedules``.
        kinds: machine kinds to compare (any of ``is``, ``ls``, ``els``, ``bbels``).
        ls_patch_sizes: a separate schedule for ``ls`` (same as ``schedules={"ls": ...}``).
        schedules: a machine's own calibrated schedule (``steps`` entries), by kind.
        patch_sizes_kind: which machine ``patch_sizes`` was calibrated for (only for the table note).
        approximate, top_k: passed to :func:`core.score.sample` (faster, not exact); default exact.
        batch: samples per machine call.
        grid_path: also save :func:`comparison_grid` of the first ``grid_rows`` seeds there.
        on_progress: ``on_progress(what, done, total)``.
    """
    sizes = [int(p) for p in patch_sizes]
    if len(sizes) != steps:
        raise BadInputError(f"Give one patch size per step: {len(sizes)} sizes for {steps} steps.")
    for kind in kinds:
        if kind not in MACHINE_KINDS:
            raise BadInputError(f"Unknown machine kind {kind!r}. Valid kinds: {', '.join(MACHINE_KINDS)}.")
    own = {k: [int(p) for p in v] for k, v in (schedules or {}).items()}
    if ls_patch_sizes is not None:
        own.setdefault("ls", [int(p) for p in ls_patch_sizes])
    for kind, schedule in own.items():
        if len(schedule) != steps:
            raise BadInputError(f"The {kind} schedule has {len(schedule)} sizes for {steps} steps.")
    used = {k: own.get(k, sizes) for k in kinds if k != "is"}
    if not seeds:
        raise BadInputError("Give at least one seed.")
    seeds = [int(s) for s in seeds]
    channels, size = int(library.shape[1]), int(library.shape[2])
    conditional = int(getattr(model, "num_classes", 0)) > 0
    if conditional and labels is None:
        raise BadInputError("This model is class-conditional: the comparison needs the library labels.")
    class_labels = sample_labels(seeds, labels, conditional)
    noise = seeded_noise(seeds, channels, size)
    timings: dict[str, float] = {}
    started = time.monotonic()
    device = next(model.parameters()).device
    net = ddim_sample(model, noise.to(device), steps, class_labels).images.cpu()
    timings["net"] = time.monotonic() - started
    images: dict[str, torch.Tensor] = {"net": net}
    r: dict[str, list[float]] = {}
    for kind in kinds:
        started = time.monotonic()
        schedule = used.get(kind, sizes)
        parts = []
        for start in range(0, len(seeds), batch):
            part_labels = class_labels[start : start + batch] if class_labels is not None else None
            result = sample(
                library,
                noise[start : start + batch],
                kind,
                schedule if kind != "is" else [1] * steps,
                labels=labels if conditional else None,
                class_labels=part_labels,
                device=device,
                approximate=approximate and kind != "is",
                top_k=top_k,
            )
            parts.append(result.images.cpu())
            if on_progress is not None:
                on_progress(kind, min(start + batch, len(seeds)), len(seeds))
            logger.info("%s: %d/%d samples", kind, min(start + batch, len(seeds)), len(seeds))
        images[kind] = torch.cat(parts)
        r[kind] = [pearson_r(net[i], images[kind][i]) for i in range(len(seeds))]
        timings[kind] = time.monotonic() - started
    table = ComparisonTable(
        kinds=list(kinds),
        seeds=seeds,
        class_labels=class_labels.tolist() if class_labels is not None else None,
        r=r,
        steps=steps,
        patch_sizes=sizes,
        info={
            "approximate": approximate,
            "top_k": top_k if approximate else None,
            "patch_index": approximate and uses_index("bbels", device),
            "schedules": used,
            "own_schedule": [k for k in kinds if k in own],
            "shared_schedule": patch_sizes_kind,
            "threads": torch.get_num_threads(),
            "seconds": {k: round(v, 1) for k, v in timings.items()},
        },
        images=images if keep_images else {},
    )
    if grid_path is not None:
        comparison_grid(images, table, rows=grid_rows).save(grid_path)
    return table


def run_environment() -> dict[str, Any]:
    """Where a comparison ran: CPU model and cores, torch threads and version, load average, date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "load_average": load,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def save_comparison(folder: Path, table: ComparisonTable, **provenance: Any) -> Path:
    """Write ``table`` (without images) to ``comparison.json`` in the model folder ``folder``.

    ``provenance`` (e.g. ``command=``, ``wall_seconds=``) is stored in the table's ``info`` together
    with :func:`run_environment`, so a reader can tell how the numbers were made.
    """
    data = table.to_json()
    data["info"] = {**data["info"], "environment": run_environment(), **provenance}
    path = Path(folder) / COMPARISON_FILE
    write_json(path, data)
    logger.info("saved the comparison of %d seeds to %s", len(table.seeds), path)
    return path


def load_comparison(folder: Path) -> ComparisonTable | None:
    """The table saved by :func:`save_comparison` in ``folder``; None when there is none.

    Raises:
        BadInputError: the file exists but cannot be read or does not hold a comparison.
    """
    path = Path(folder) / COMPARISON_FILE
    if not path.is_file():
        return None
    data = read_json(path)
    try:
        table = ComparisonTable.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInputError(f"{path} does not hold a comparison table ({exc}).") from exc
    if not table.kinds or any(len(table.r.get(k, [])) != len(table.seeds) for k in table.kinds):
        raise BadInputError(f"{path} does not hold one r per seed for every machine.")
    return table


def _tile(image: torch.Tensor, scale: int) -> Image.Image:
    array = ((image.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()
    tile = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
    return tile.resize((tile.width * scale, tile.height * scale), Image.Resampling.NEAREST)


def comparison_grid(
    images: dict[str, torch.Tensor], table: ComparisonTable | None = None, rows: int = 8, scale: int = 3
) -> Image.Image:
    """Side-by-side grid: one row per seed; columns network, then each machine (with its r)."""
    columns = ["net"] + [k for k in images if k != "net"]
    count = min(rows, images["net"].shape[0])
    size = images["net"].shape[-1] * scale
    pad, header, caption = 4, 14, 12
    width = len(columns) * (size + pad) + pad
    height = header + count * (size + caption + pad) + pad
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for c, name in enumerate(columns):
        x = pad + c * (size + pad)
        draw.text((x, 2), COLUMN_TITLES.get(name, name), fill=(0, 0, 0))
        for row in range(count):
            y = header + row * (size + caption + pad)
            grid.paste(_tile(images[name][row], scale).convert("RGB"), (x, y))
            if table is not None and name in table.r:
                draw.text((x, y + size), f"r={table.r[name][row]:.2f}", fill=(60, 60, 60))
    return grid
