"""An analysis on disk: saved by the originality-check job, loaded back by the page (exactly as it was).

A saved analysis is a folder with three files:

- ``arrays.npz``: every map (source map, source pixel, offset, similarity, and the same per piece size),
  written and read with ``allow_pickle=False``;
- ``analysis.json``: everything else (sources, regions, near-copy verdict, scores, summary, notices,
  timings, backend, working size, and the attached :class:`~core.analyzer.verdict.Verdict` when there is
  one, e.g. from a studio image's exact sources; analyses saved before verdicts existed load without),
  numbers at full precision;
- ``analysed.png``: the image at the analysis resolution (when the result has one).

The folder is written next to its final place and renamed into it, so a reader never sees half of it.
Nothing is ever unpickled; a damaged or missing folder gives one plain :class:`BadInputError`.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.analyzer.result import AnalysisResult, NearCopy, Region, ScaleResult, SourceShare
from core.analyzer.verdict import Verdict
from core.errors import BadInputError

logger = logging.getLogger(__name__)

FORMAT = 1
ARRAYS, META, IMAGE = "arrays.npz", "analysis.json", "analysed.png"
DAMAGED = "This check's result is missing or damaged; run it again."
#: the maps of a result or a piece size: name -> (dtype, extra dimensions after (H, W))
MAPS: dict[str, tuple[str, tuple[int, ...]]] = {
    "source_map": ("int32", ()),
    "source_yx": ("int32", (2,)),
    "offset_map": ("int32", (2,)),
    "similarity": ("float32", ()),
}
SCALE_MAPS = ("source_map", "source_yx", "similarity")


# ----------------------------------------------------------------------------------------- to JSON


def _box(values: Any) -> list[int]:
    return [int(v) for v in values]


def _region(region: Region) -> dict[str, Any]:
    return {
        "source": int(region.source),
        "area": float(region.area),
        "box": _box(region.box),
        "source_box": _box(region.source_box),
        "scale": float(region.scale),
    }


def _share(share: SourceShare) -> dict[str, Any]:
    return {
        "index": int(share.index),
        "item_id": str(share.item_id),
        "name": str(share.name),
        "share": float(share.share),
        "colour": str(share.colour),
        "regions": [_region(r) for r in share.regions],
    }


def _near(near: NearCopy) -> dict[str, Any]:
    return {
        "is_copy": bool(near.is_copy),
        "score": float(near.score),
        "index": None if near.index is None else int(near.index),
        "item_id": near.item_id,
        "name": near.name,
        "mirrored": bool(near.mirrored),
        "crop": None if near.crop is None else [float(v) for v in near.crop],
        "reason": str(near.reason),
    }


def _meta(result: AnalysisResult) -> dict[str, Any]:
    def largest(share: SourceShare | None) -> dict[str, Any] | None:
        return None if share is None else _share(share)

    return {
        "format": FORMAT,
        "library": result.library,
        "space": result.space,
        "image_size": [int(v) for v in result.image_size],
        "sources": [_share(s) for s in result.sources],
        "regions": [_region(r) for r in result.regions],
        "borrowed_fraction": float(result.borrowed_fraction),
        "largest_region_fraction": float(result.largest_region_fraction),
        "largest_region_source": largest(result.largest_region_source),
        "near_copy": _near(result.near_copy),
        "originality": int(result.originality),
        "copy_risk": result.copy_risk,
        "summary": result.summary,
        "scales": [
            {
                "patch": int(scale.patch),
                "sources": [_share(s) for s in scale.sources],
                "regions": [_region(r) for r in scale.regions],
                "borrowed_fraction": float(scale.borrowed_fraction),
                "largest_region_fraction": float(scale.largest_region_fraction),
                "largest_region_source": largest(scale.largest_region_source),
            }
            for scale in result.scales.values()
        ],
        "notices": [str(n) for n in result.notices],
        "timings": {str(k): float(v) for k, v in result.timings.items()},
        "backend": result.backend,
        "work_size": int(result.work_size),
        "has_image": result.analysed_image is not None,
        "verdict": None if result.verdict is None else result.verdict.to_json(),
    }


def _arrays(result: AnalysisResult) -> dict[str, np.ndarray]:
    arrays = {name: np.asarray(getattr(result, name)).astype(dtype, copy=False) for name, (dtype, _) in MAPS.items()}
    for scale in result.scales.values():
        for name in SCALE_MAPS:
            arrays[f"scale{int(scale.patch)}_{name}"] = np.asarray(getattr(scale, name)).astype(MAPS[name][0],
                                                                                                  copy=False)
    return arrays


def save_analysis(result: AnalysisResult, folder: Path) -> Path:
    """Write ``result`` into ``folder`` (replacing an older one there) all at once. Returns ``folder``."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()
    try:
        with open(staging / ARRAYS, "wb") as handle:
            np.savez_compressed(handle, **_arrays(result))
        (staging / META).write_text(json.dumps(_meta(result), ensure_ascii=False), encoding="utf-8")
        if result.analysed_image is not None:
            result.analysed_image.save(staging / IMAGE, format="PNG")
        old = None
        if folder.exists():  # a re-run: move the older result aside, then drop it
            old = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.old"
            folder.rename(old)
        staging.rename(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("analysis saved to %s", folder)
    return folder


# ----------------------------------------------------------------------------------------- from JSON


def _int_list(value: Any, length: int) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) != length or not all(isinstance(v, int) for v in value):
        raise ValueError(f"expected {length} whole numbers, got {value!r}")
    return tuple(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def _load_region(data: dict[str, Any]) -> Region:
    return Region(
        source=int(_int_list([data["source"]], 1)[0]),
        area=_number(data["area"]),
        box=_int_list(data["box"], 4),  # type: ignore[arg-type]
        source_box=_int_list(data["source_box"], 4),  # type: ignore[arg-type]
        scale=_number(data.get("scale", 1.0)),  # analyses saved before sizes were searched: 1
    )


def _load_share(data: dict[str, Any]) -> SourceShare:
    return SourceShare(
        index=int(_int_list([data["index"]], 1)[0]),
        item_id=_text(data["item_id"]),
        name=_text(data["name"]),
        share=_number(data["share"]),
        regions=[_load_region(r) for r in data["regions"]],
        colour=_text(data["colour"]),
    )


def _load_near(data: dict[str, Any]) -> NearCopy:
    crop = data["crop"]
    return NearCopy(
        is_copy=bool(data["is_copy"]),
        score=_number(data["score"]),
        index=None if data["index"] is None else int(_int_list([data["index"]], 1)[0]),
        item_id=None if data["item_id"] is None else _text(data["item_id"]),
        name=None if data["name"] is None else _text(data["name"]),
        mirrored=bool(data["mirrored"]),
        crop=None if crop is None else tuple(_number(v) for v in crop),  # type: ignore[arg-type]
        reason=_text(data["reason"]),
    )


def _optional_share(data: Any) -> SourceShare | None:
    return None if data is None else _load_share(data)


def _map(arrays: dict[str, np.ndarray], key: str, name: str, shape: tuple[int, int]) -> np.ndarray:
    dtype, extra = MAPS[name]
    array = arrays[key]
    if array.dtype != np.dtype(dtype) or array.shape != shape + extra:
        raise ValueError(f"{key}: {array.dtype} {array.shape}, expected {dtype} {shape + extra}")
    return array


def _read(folder: Path) -> AnalysisResult:
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("unknown format")
    with np.load(folder / ARRAYS, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    source_map = arrays["source_map"]
    if source_map.ndim != 2:
        raise ValueError("source map is not two-dimensional")
    shape = (int(source_map.shape[0]), int(source_map.shape[1]))
    maps = {name: _map(arrays, name, name, shape) for name in MAPS}
    scales: dict[int, ScaleResult] = {}
    for data in meta["scales"]:
        patch = int(_int_list([data["patch"]], 1)[0])
        scale_maps = {name: _map(arrays, f"scale{patch}_{name}", name, shape) for name in SCALE_MAPS}
        scales[patch] = ScaleResult(
            patch=patch,
            source_map=scale_maps["source_map"],
            source_yx=scale_maps["source_yx"],
            similarity=scale_maps["similarity"],
            sources=[_load_share(s) for s in data["sources"]],
            regions=[_load_region(r) for r in data["regions"]],
            borrowed_fraction=_number(data["borrowed_fraction"]),
            largest_region_fraction=_number(data["largest_region_fraction"]),
            largest_region_source=_optional_share(data["largest_region_source"]),
        )
    image = None
    if meta["has_image"]:
        with Image.open(folder / IMAGE) as opened:
            opened.load()
            image = opened.copy()
    copy_risk = _text(meta["copy_risk"])
    if copy_risk not in ("low", "medium", "high"):
        raise ValueError(f"unknown copy risk {copy_risk!r}")
    return AnalysisResult(
        library=_text(meta["library"]),
        space=_text(meta["space"]),
        image_size=_int_list(meta["image_size"], 2),  # type: ignore[arg-type]
        source_map=maps["source_map"],
        source_yx=maps["source_yx"],
        offset_map=maps["offset_map"],
        similarity=maps["similarity"],
        sources=[_load_share(s) for s in meta["sources"]],
        regions=[_load_region(r) for r in meta["regions"]],
        borrowed_fraction=_number(meta["borrowed_fraction"]),
        largest_region_fraction=_number(meta["largest_region_fraction"]),
        largest_region_source=_optional_share(meta["largest_region_source"]),
        near_copy=_load_near(meta["near_copy"]),
        originality=int(_int_list([meta["originality"]], 1)[0]),
        copy_risk=copy_risk,
        summary=_text(meta["summary"]),
        scales=scales,
        notices=[_text(n) for n in meta["notices"]],
        timings={_text(k): _number(v) for k, v in dict(meta["timings"]).items()},
        backend=_text(meta["backend"]),
        work_size=int(_int_list([meta["work_size"]], 1)[0]),
        analysed_image=image,
        verdict=None if meta.get("verdict") is None else Verdict.from_json(meta["verdict"]),
    )


def load_analysis(folder: Path) -> AnalysisResult:
    """The analysis saved in ``folder``; :class:`BadInputError` when it is missing or damaged."""
    folder = Path(folder)
    try:
        return _read(folder)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile, EOFError) as err:
        logger.warning("saved analysis in %s not readable: %s", folder, err)
        raise BadInputError(DAMAGED) from None
