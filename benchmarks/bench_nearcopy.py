"""Benchmark: the near-copy check through a compressed index against the full scan (issue 18, item 4).

    python benchmarks/bench_nearcopy.py --images 2000 20000 100000 --queries 20

For each library size: ``--images`` seeded random crops of the scikit-image photos (128 px, the analyzer's
working size) are described (``library_descriptors``, 49 boxes × 256 per image, float16 on disk and read
through a memory map), then both whole-image indexes are made: the full scan (``ExactGlobal``) and the
compressed index (``CompressedGlobal``, IVF + PQ32, saved and read back memory-mapped, as the analyzer does).
Queries are near copies of random library images (crop ≤ 10 % per side, resized ×0.6–2.5, half mirrored,
JPEG 50–90). Reported per index: build time, files on disk, retrieval time per query (median), whole check
time (retrieval + alignment, median), copies flagged with the right image, how often the two name the same image,
and where they do not, the verified score of each (a look-alike library image verifies as well as the planted one).
The load average is printed before and after: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_analyzer import _crops, _load_average  # noqa: E402

SIDE = 128
CHUNK = 512


def _library(count: int, seed: int):
    """(uint8 pixels (N, 3, S, S), float16 descriptors (N, 49, 256)), described chunk by chunk."""
    import torch
    from PIL import Image

    from core.analyzer.nearcopy import library_descriptors

    pixels = np.empty((count, 3, SIDE, SIDE), dtype=np.uint8)
    descriptors = None
    for start in range(0, count, CHUNK):
        crops = _crops(min(CHUNK, count - start), seed=seed + start)
        arrays = np.stack(
            [np.asarray(Image.fromarray(c).resize((SIDE, SIDE), Image.Resampling.BILINEAR)) for c in crops]
        )
        pixels[start : start + len(crops)] = arrays.transpose(0, 3, 1, 2)
        tensor = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        described = library_descriptors(tensor).astype(np.float16)
        if descriptors is None:
            descriptors = np.empty((count, *described.shape[1:]), dtype=np.float16)
        descriptors[start : start + len(crops)] = described
    return pixels, descriptors


def _near_copy(array: np.ndarray, rng: np.random.Generator):
    from PIL import Image

    from core.images import to_tensor

    image = Image.fromarray(array.transpose(1, 2, 0))
    keep_h, keep_w = rng.uniform(0.9, 1.0, size=2)
    h, w = int(SIDE * keep_h), int(SIDE * keep_w)
    top, left = int(rng.integers(0, SIDE - h + 1)), int(rng.integers(0, SIDE - w + 1))
    image = image.crop((left, top, left + w, top + h))
    scale = float(rng.uniform(0.6, 2.5))
    image = image.resize((max(16, int(w * scale)), max(16, int(h * scale))), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(50, 90)))
    buffer.seek(0)
    return to_tensor(Image.open(buffer).convert("RGB"))


def _thumbs(query):
    import torch
    import torch.nn.functional as F

    from core.analyzer.nearcopy import THUMB, _normalise, _variants

    gray = torch.stack([v.mean(dim=0, keepdim=True) for _, v in _variants(query)])
    return _normalise(F.interpolate(gray, size=(THUMB, THUMB), mode="bilinear", antialias=True))


def _run(count: int, queries: int, seed: int) -> dict:
    from core.analyzer.globalindex import CompressedGlobal, ExactGlobal, load_global_index
    from core.analyzer.nearcopy import NearCopyChecker
    from core.analyzer.settings import AnalyzerSettings

    threshold = AnalyzerSettings().copy_threshold
    t0 = time.perf_counter()
    pixels, descriptors = _library(count, seed)
    described_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="bench-nearcopy-") as folder:
        directory = Path(folder)
        np.save(directory / "global.npy", descriptors, allow_pickle=False)
        mapped = np.load(directory / "global.npy", mmap_mode="r")
        del descriptors
        t0 = time.perf_counter()
        built = CompressedGlobal.build(mapped)
        build_s = time.perf_counter() - t0
        built.write(directory / "global.faiss")
        compressed = load_global_index(directory, built.meta(), mapped)
        del built
        indexes = {"full scan": ExactGlobal(mapped), "compressed index": compressed}
        rng = np.random.default_rng(seed + 1)
        rows = rng.choice(count, size=queries, replace=False)
        cases = [(int(row), _near_copy(pixels[row], rng)) for row in rows]
        report: dict = {
            "images": count,
            "describe_s": round(described_s, 1),
            "global_npy_mb": round((directory / "global.npy").stat().st_size / 1e6, 1),
            "global_faiss_mb": round((directory / "global.faiss").stat().st_size / 1e6, 1),
            "compressed_build_s": round(build_s, 1),
        }
        found: dict[str, list] = {}
        for name, index in indexes.items():
            checker = NearCopyChecker(index, pixels)
            retrieve_s, check_s, hits, picks = [], [], 0, []
            for row, query in cases:
                thumbs = _thumbs(query)
                t0 = time.perf_counter()
                index.retrieve(thumbs, None, checker.candidates)
                retrieve_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                match = checker.check(query)
                check_s.append(time.perf_counter() - t0)
                picks.append(None if match is None else (match.row, round(match.score, 3)))
                hits += match is not None and match.row == row and match.score >= threshold
            found[name] = picks
            report[name] = {
                "retrieve_ms_median": round(1000 * statistics.median(retrieve_s), 1),
                "check_ms_median": round(1000 * statistics.median(check_s), 1),
                "copies_flagged": f"{hits} of {len(cases)}",
            }
        pairs = list(zip(found["full scan"], found["compressed index"], strict=True))
        same = sum((a and a[0]) == (b and b[0]) for a, b in pairs)
        report["same_image_as_full_scan"] = f"{same} of {len(cases)}"
        # where they differ: each one's verified score (a look-alike verifies as well; a miss scores lower)
        report["differences"] = [
            {"planted": row, "full_scan": a, "compressed": b}
            for (row, _), (a, b) in zip(cases, pairs, strict=True)
            if (a and a[0]) != (b and b[0])
        ]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    print(f"load average before: {_load_average()}  (cores: {os.cpu_count()})")
    results = []
    for count in args.images:
        result = _run(count, args.queries, args.seed)
        print(json.dumps(result), flush=True)
        results.append(result)
    print(f"load average after: {_load_average()}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
