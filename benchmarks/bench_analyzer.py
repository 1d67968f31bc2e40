"""Benchmark of the patch-mosaic analyzer (CPU).

    python benchmarks/bench_analyzer.py --images 1000 --queries 3 [--threads 2]

Builds a library of ``--images`` random crops (resized to 128 px) of scikit-image sample photos in a
temporary data directory, then reports, for exact and for FAISS search: index build time (per 1,000
images), index load time, analysis time of a 512×512 collage after indexing (warm, wall clock and
process CPU time, with the stages), per-pixel accuracy against the collage's known provenance, and
how often exact and FAISS search give the same per-pixel source image. The load average is printed
at the start and at the end: timings on a shared machine are only comparable at similar load.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUERY_SIDE = 512
#: crop ``i`` comes from photo ``i % len(PHOTOS)``
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "gravel", "grass", "brick",
          "camera", "coins", "moon", "hubble_deep_field", "retina")


def _load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _crops(count: int, seed: int = 0) -> list[np.ndarray]:
    import skimage.data

    photos = []
    for name in PHOTOS:
        array = np.asarray(getattr(skimage.data, name)())
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        photos.append(array[..., :3])
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(rng.integers(96, min(photo.shape[:2])))
        y = int(rng.integers(0, photo.shape[0] - side + 1))
        x = int(rng.integers(0, photo.shape[1] - side + 1))
        out.append(photo[y : y + side, x : x + side])
    return out


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).resize((128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def _query(library: list[np.ndarray], seed: int):
    """A 512×512 collage: one library image as background, five pasted rectangles (96-255 px) from
    others, and two squares at other sizes: a whole picture shrunk to 160 px (0.31× its size when both
    are shown at one size) and a 128 px detail blown up to 256 px (2×); returns (image, per-pixel library
    index)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    first = int(rng.integers(len(library)))
    canvas = np.asarray(Image.fromarray(library[first]).resize((QUERY_SIDE, QUERY_SIDE))).copy()
    truth = np.full((QUERY_SIDE, QUERY_SIDE), first, dtype=np.int64)
    for _ in range(5):
        pick = int(rng.integers(len(library)))
        item = np.asarray(Image.fromarray(library[pick]).resize((QUERY_SIDE, QUERY_SIDE)))
        h, w = (int(v) for v in rng.integers(96, 256, size=2))
        sy, sx, ty, tx = (int(v) for v in rng.integers(0, QUERY_SIDE - 256, size=4))
        canvas[ty : ty + h, tx : tx + w] = item[sy : sy + h, sx : sx + w]
        truth[ty : ty + h, tx : tx + w] = pick
    for factor in (0.5, 2.0):  # one whole picture shrunk, one detail blown up (relative to the collage)
        pick = int(rng.integers(len(library)))
        item = np.asarray(Image.fromarray(library[pick]).resize((QUERY_SIDE, QUERY_SIDE)))
        side = 160 if factor < 1 else 256
        crop = item if factor < 1 else item[96 : 96 + int(side / factor), 96 : 96 + int(side / factor)]
        piece = np.asarray(Image.fromarray(crop).resize((side, side)))
        ty, tx = (int(v) for v in rng.integers(0, QUERY_SIDE - side, size=2))
        canvas[ty : ty + side, tx : tx + side] = piece
        truth[ty : ty + side, tx : tx + side] = pick
    return Image.fromarray(canvas), truth


def _accuracy(source_map: np.ndarray, truth: np.ndarray, position_to_crop: np.ndarray) -> tuple[float, float]:
    """Share of the analysis grid whose source (mapped to crop numbers) is the true crop, and share whose
    source is a crop of the same photo (crops of one photo overlap, so the same content can be in several)."""
    from core.analyzer.compare import _resample

    small_truth = _resample(truth, *source_map.shape)
    named = np.where(source_map >= 0, position_to_crop[source_map.clip(0)], -1)
    same_photo = (named >= 0) & (named % len(PHOTOS) == small_truth % len(PHOTOS))
    return float((named == small_truth).mean()), float(same_photo.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--skip-exact", action="store_true", help="leave out the exact-search run")
    args = parser.parse_args()
    os.environ["MOSAIC_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-analyzer-")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from core.analyzer import Analyzer, AnalyzerSettings
    from core.analyzer.index import clear_cache
    from core.libraries import LibraryManager

    print(f"load average at start: {_load_average()}; torch threads: {torch.get_num_threads()}")
    manager = LibraryManager()
    library = _crops(args.images)
    t0 = time.perf_counter()
    manager.create_from_files("bench", [(f"crop_{i:04d}.png", _png(a)) for i, a in enumerate(library)])
    print(f"library import: {time.perf_counter() - t0:.1f} s for {args.images} images")
    manager.load("bench", 128, 3)  # library tensor cache, shared by both indexes
    position_to_crop = np.array([int(Path(item["source"]).stem.split("_")[1]) for item in manager.items("bench")])
    queries = [_query(library, q) for q in range(args.queries)]

    results = {}
    medians = {}
    configurations = [("faiss", True), ("faiss", False)] + ([] if args.skip_exact else [("exact", True)])
    for backend, other_sizes in configurations:
        settings = AnalyzerSettings() if other_sizes else AnalyzerSettings(scale_levels=())
        analyzer = Analyzer(manager, settings=settings, force_backend=backend)
        if not other_sizes:
            backend = "faiss, one size only"
        t0 = time.perf_counter()
        index, _ = analyzer.index("bench")
        build = time.perf_counter() - t0
        sizes = {stem: s.searcher.count for stem, s in index.all_scales()}
        print(f"[{backend}] index build: {build:.1f} s ({build * 1000 / args.images:.1f} s per 1,000 images); "
              f"indexed patches per scale: {sizes}")
        clear_cache()
        t0 = time.perf_counter()
        analyzer.index("bench")
        print(f"[{backend}] index load from disk (checksums verified): {time.perf_counter() - t0:.2f} s")
        analyzer.analyze(queries[0][0], "bench")  # warm-up: first-call allocations, library cache
        times, cpus, maps, accuracies = [], [], [], []
        for q, (image, truth) in enumerate(queries):
            t0, c0 = time.perf_counter(), time.process_time()
            result = analyzer.analyze(image, "bench")
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            maps.append(result.source_map)
            accuracies.append(_accuracy(result.source_map, truth, position_to_crop))
            stages = {k: round(v, 2) for k, v in result.timings.items()}
            print(f"[{backend}] query {q}: {times[-1]:.2f} s (CPU {cpus[-1]:.2f} s) {stages}; accuracy "
                  f"{accuracies[-1][0]:.3f} (same photo {accuracies[-1][1]:.3f}) — {result.summary}")
        print(f"[{backend}] analysis of a {QUERY_SIDE}×{QUERY_SIDE} image: median {np.median(times):.2f} s, "
              f"max {max(times):.2f} s (CPU median {np.median(cpus):.2f} s); "
              f"per-pixel accuracy mean {np.mean([a[0] for a in accuracies]):.3f} "
              f"(same photo {np.mean([a[1] for a in accuracies]):.3f})")
        results[backend] = maps
        medians[backend] = float(np.median(times))
    print(f"searching other sizes costs {medians['faiss'] / medians['faiss, one size only']:.2f}× the time of one "
          "size (median analysis, same run)")
    if "exact" in results:
        agree = [float((a == b).mean()) for a, b in zip(results["exact"], results["faiss"], strict=True)]
        print(f"exact vs FAISS: per-pixel source agreement mean {np.mean(agree):.3f} (min {min(agree):.3f})")
    print(f"load average at end: {_load_average()}")


if __name__ == "__main__":
    main()
