"""Benchmark of the patch-mosaic analyzer (CPU).

    python benchmarks/bench_analyzer.py --images 1000 --queries 5 [--threads 2]

Builds a library of ``--images`` random 128 px crops of scikit-image sample photos in a temporary
data directory, then reports: index build time (per 1,000 images) for exact and FAISS search,
analysis time of a 512×512 collage after indexing (warm), and how often exact and FAISS search
give the same per-pixel source image.
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


def _crops(count: int, seed: int = 0) -> list[np.ndarray]:
    import skimage.data

    photos = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "gravel", "grass", "brick",
                 "camera", "coins", "moon", "hubble_deep_field", "retina"):
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
    from PIL import Image

    rng = np.random.default_rng(seed)
    canvas = np.asarray(Image.fromarray(library[int(rng.integers(len(library)))]).resize((512, 512))).copy()
    for _ in range(5):
        item = np.asarray(Image.fromarray(library[int(rng.integers(len(library)))]).resize((512, 512)))
        h, w = (int(v) for v in rng.integers(96, 256, size=2))
        sy, sx, ty, tx = (int(v) for v in rng.integers(0, 512 - 256, size=4))
        canvas[ty : ty + h, tx : tx + w] = item[sy : sy + h, sx : sx + w]
    return Image.fromarray(canvas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = parser.parse_args()
    os.environ["MOSAIC_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-analyzer-")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from core.analyzer import Analyzer
    from core.analyzer.index import clear_cache
    from core.libraries import LibraryManager

    manager = LibraryManager()
    library = _crops(args.images)
    t0 = time.perf_counter()
    manager.create_from_files("bench", [(f"crop_{i:04d}.png", _png(a)) for i, a in enumerate(library)])
    print(f"library import: {time.perf_counter() - t0:.1f} s for {args.images} images")
    manager.load("bench", 128, 3)  # library tensor cache, shared by both indexes

    results = {}
    for backend in ("faiss", "exact"):
        analyzer = Analyzer(manager, force_backend=backend)
        t0 = time.perf_counter()
        index, _ = analyzer.index("bench")
        build = time.perf_counter() - t0
        sizes = {p: s.searcher.count for p, s in index.scales.items()}
        print(f"[{backend}] index build: {build:.1f} s ({build * 1000 / args.images:.1f} s per 1,000 images); "
              f"patches per scale: {sizes}")
        clear_cache()
        t0 = time.perf_counter()
        analyzer.index("bench")
        print(f"[{backend}] index load from disk (checksums verified): {time.perf_counter() - t0:.2f} s")
        times, maps = [], []
        for q in range(args.queries):
            image = _query(library, q)
            t0 = time.perf_counter()
            result = analyzer.analyze(image, "bench")
            times.append(time.perf_counter() - t0)
            maps.append(result.source_map)
            print(f"[{backend}] query {q}: {times[-1]:.2f} s {result.timings} — {result.summary}")
        print(f"[{backend}] analysis of a 512×512 image: median {np.median(times):.2f} s, max {max(times):.2f} s")
        results[backend] = maps
    agree = [float((a == b).mean()) for a, b in zip(results["exact"], results["faiss"], strict=True)]
    print(f"exact vs FAISS: per-pixel source agreement mean {np.mean(agree):.3f} (min {min(agree):.3f})")


if __name__ == "__main__":
    main()
