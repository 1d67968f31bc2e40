"""Creativity Lab experiments as background jobs.

* ``locality``: one local-score image per patch-size preset, from the same noise and digit class, with its
  likeness to the closest library picture (how near it is to a copy);
* ``compare``: the studio's trained network next to the patch machine, from the same noise.

Results are not gallery images: they are written to ``<job folder>/lab/`` (PNGs and ``lab.json``) and
read back by the page with :func:`load_lab_result`. A retried job keeps the presets it finished.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import BadInputError
from core.jobs.context import JobContext, job_folder
from core.jobs.models import JobRecord

logger = logging.getLogger(__name__)

LOCALITY_PRESETS = ("fine", "balanced", "coarse", "whole-image")
#: the patch-size presets of the locality experiment in the page's words
PRESET_WORDS = {
    "fine": "Small patches",
    "balanced": "Medium patches",
    "coarse": "Large patches",
    "whole-image": "Whole-picture patches",
}
RESULT = "lab.json"


def lab_folder(job_id: str) -> Path:
    path = job_folder(job_id) / "lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def locality_params(seed: int) -> dict[str, Any]:
    return {"experiment": "locality", "seed": int(seed)}


def compare_params(seed: int, count: int, grid: str = "uniform") -> dict[str, Any]:
    """``grid``: the time grid of the network and the machine ("uniform" or the authors' "reference")."""
    params: dict[str, Any] = {"experiment": "compare", "seed": int(seed), "count": int(count)}
    if grid != "uniform":
        params["grid"] = grid
    return params


def _write(folder: Path, data: dict[str, Any]) -> None:
    tmp = folder / f".{RESULT}.tmp"
    tmp.write_text(json.dumps(data))
    tmp.replace(folder / RESULT)


def _read(folder: Path) -> dict[str, Any]:
    path = folder / RESULT
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def closest_likeness(image: np.ndarray, library: np.ndarray) -> tuple[float, int]:
    """Likeness of ``image`` to its closest library picture: the highest Pearson r of its pixels with those of
    any of ``library`` (``(N, ...)``, same pixel count), and that picture's index. 1.0 is a copy (up to
    brightness and contrast); a constant picture counts as unrelated (0.0)."""
    x = np.asarray(image, dtype=np.float64).ravel()
    lib = np.asarray(library, dtype=np.float64).reshape(len(library), -1)
    if lib.shape[1] != x.size:
        raise BadInputError(f"Cannot compare a picture of {x.size} values with library pictures of {lib.shape[1]}.")
    x = x - x.mean()
    lib = lib - lib.mean(axis=1, keepdims=True)
    denom = np.sqrt((lib * lib).sum(axis=1) * (x * x).sum())
    r = np.divide(lib @ x, denom, out=np.zeros(len(lib)), where=denom > 0)
    best = int(np.argmax(r))
    return float(np.clip(r[best], -1.0, 1.0)), best


def run_lab_job(context: JobContext) -> str:
    experiment = context.params.get("experiment")
    seed = int(context.params.get("seed", 0))
    folder = lab_folder(context.job.id)
    if experiment == "locality":
        return _locality(context, folder, seed)
    if experiment == "compare":
        grid = str(context.params.get("grid", "uniform"))
        return _compare(context, folder, seed, int(context.params.get("count", 4)), grid)
    raise BadInputError(f"Unknown Lab experiment {experiment!r}.")


def _locality(context: JobContext, folder: Path, seed: int) -> str:
    from core.engines.base import Progress
    from core.engines.local_score import LocalScoreEngine, LocalScoreRequest
    from core.score import PRESETS

    presets = [p for p in LOCALITY_PRESETS if p in PRESETS]
    data = _read(folder)
    rows: list[dict[str, Any]] = [r for r in data.get("rows", []) if r.get("preset") in presets]
    done = {r["preset"] for r in rows if "closest" in r}
    rows = [r for r in rows if r["preset"] in done]
    context.progress(0.0, "Preparing the handwritten-digits library…")
    engine = context.cache.setdefault("engine:local-score", LocalScoreEngine())
    library = engine.libraries.load("digits", 16).images.numpy()
    for k, preset in enumerate(presets):
        if preset in done:
            continue
        context.cancel.raise_if_cancelled()
        words = f"Picture {k + 1} of {len(presets)}: {PRESET_WORDS.get(preset, preset).lower()}"
        context.progress(k / len(presets), f"{words}…")

        def on_progress(p: Progress, k: int = k, words: str = words) -> None:
            context.progress((k + p.fraction) / len(presets), f"{words}, step {p.step} of {p.total_steps}…")

        (image,) = engine.generate(
            LocalScoreRequest(seed=seed, library="digits", size=16, preset=preset, machine="bbels", label="random"),
            on_progress=on_progress,
            cancel=context.cancel,
        )
        name = f"locality-{preset}.png"
        image.image.save(folder / name)
        sources = int(len(np.unique(image.arrays["sources"][..., 0])))
        pixels = np.asarray(image.image.convert("L" if library.shape[1] == 1 else "RGB"), dtype=np.float64)
        closest, index = closest_likeness(pixels.reshape(*pixels.shape[:2], -1).transpose(2, 0, 1), library)
        rows.append(
            {"preset": preset, "image": name, "sources": sources, "closest": round(closest, 4), "closest_index": index}
        )
        rows.sort(key=lambda r: presets.index(r["preset"]))
        _write(folder, {"experiment": "locality", "seed": seed, "rows": rows})
    context.save_result(lab="lab")
    return "Done: one picture per patch size."


def _compare(context: JobContext, folder: Path, seed: int, count: int, grid: str = "uniform") -> str:
    import torch

    from core.engines.trained import TrainedModelEngine, TrainedModelRequest
    from core.images import from_tensor

    if not 1 <= count <= 8:
        raise BadInputError(f"Choose between 1 and 8 images (got {count}).")
    from core.engines.base import Progress

    context.progress(0.0, "Loading the trained network…")
    engine = context.cache.setdefault("engine:trained", TrainedModelEngine())

    def on_progress(p: Progress) -> None:
        # the engine reports the network's steps, then the patch machine's (each half of the bar), in words
        context.progress(p.fraction, f"{p.message}…")

    images = engine.generate(
        TrainedModelRequest(seed=seed, count=count, label="random", compare_els=True, grid=grid),
        on_progress=on_progress,
        cancel=context.cancel,
    )
    rows = []
    for i, image in enumerate(images):
        network = f"network-{i}.png"
        image.image.save(folder / network)
        row: dict[str, Any] = {"network": network, "label": image.params.get("label"), "r": image.params.get("els_r")}
        els = image.arrays.get("els_image")
        if els is not None:
            machine = f"machine-{i}.png"
            from_tensor(torch.from_numpy(els).clamp(-1, 1)).save(folder / machine)
            row["machine"] = machine
        rows.append(row)
    _write(folder, {"experiment": "compare", "seed": seed, "grid": grid, "rows": rows})
    context.save_result(lab="lab")
    return f"Done: {len(rows)} picture{'' if len(rows) == 1 else 's'} compared."


def load_lab_result(job: JobRecord) -> dict[str, Any]:
    """The saved result of a Lab job, with image paths made absolute; empty when there is none yet."""
    folder = job_folder(job.id) / "lab"
    data = _read(folder)
    for row in data.get("rows", []):
        for key in ("image", "network", "machine"):
            if isinstance(row.get(key), str):
                path = (folder / Path(row[key]).name).resolve()
                row[key] = str(path) if path.is_file() else None
    return data


@functools.lru_cache(maxsize=4)
def describe_demo_model(path: str | None = None) -> dict[str, Any]:
    """What the Lab page says about the studio's demo network (read once per process)."""
    from core.engines.trained import DEMO_MODEL_DIR, TrainedModelEngine

    return TrainedModelEngine().describe(path or DEMO_MODEL_DIR)
