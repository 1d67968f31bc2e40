"""Benchmark: where a searcher's time goes at 100,000 pictures, and what one search for several queries saves
(issue 18, query speed).

    MOSAIC_DATA_DIR=/tmp/corpus/data python benchmarks/bench_search_costs.py --library bench \
        --out benchmarks/results/search_costs_100000.json

On the library's prepared index (``bench_corpus.py`` makes one of 100,000 pictures), for the whole-size 16 px
searcher and the largest reduced-size one, with query descriptors taken from the searcher's own vectors plus a
little noise (so that they have neighbours, like a checked picture's patches):

1. **Parts of one search** (2,600 queries, about a 512 px picture's 16 px patches): the coarse quantizer alone
   (which lists to probe), and the whole search probing 1, 3 and 12 lists; the median of ``--repeats``.
2. **One search for several queries**: 9 query sets of the sizes a picture and its 8 reduced copies have
   (2,600 … 140 patches), searched one at a time (as the analyzer does) and then as one search, alternating; the
   results must be the same. (Measured 2026-12-07: 0.94× and 1.07× the time, noise; not adopted.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.analyzer import Analyzer  # noqa: E402
from core.analyzer.index import IndexManager  # noqa: E402
from core.analyzer.search import for_faiss  # noqa: E402
from core.libraries import LibraryManager  # noqa: E402

SIZES = (2600, 1600, 1100, 800, 550, 400, 280, 200, 140)


def _queries(searcher, count: int, rng: np.random.Generator) -> np.ndarray:  # noqa: ANN001
    rows = np.sort(rng.choice(searcher.count, count, replace=False))
    vectors = np.asarray(searcher.vectors[rows], dtype=np.float32)
    return vectors + 0.05 * rng.standard_normal(vectors.shape).astype(np.float32)


def _median(repeats: int, run, *args) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", default="bench")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import faiss

    analyzer = Analyzer(LibraryManager())
    manager = IndexManager(
        analyzer.settings, analyzer._space("pixel", None), analyzer.libraries, analyzer.index_root, None
    )
    index, _ = manager.open(args.library)
    largest_level = max(index.levels)
    chosen = {
        "whole size, 16 px": index.scales[16].searcher,
        f"reduced to {largest_level}, 16 px": index.levels[largest_level][16].searcher,
    }
    rng = np.random.default_rng(0)
    results: dict = {
        "library": args.library,
        "pictures": index.count,
        "threads": faiss.omp_get_max_threads(),
        "load_before": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "searchers": {},
    }
    for name, searcher in chosen.items():
        if searcher.kind != "faiss" or searcher.vectors is None:
            raise SystemExit(f"the {name} searcher is not a compressed FAISS searcher; build a larger library")
        ivf = faiss.extract_index_ivf(searcher.index)
        queries = _queries(searcher, SIZES[0], rng)
        padded = for_faiss(queries, searcher.index.d)
        row: dict = {"vectors": searcher.count, "lists": int(ivf.nlist), "queries": SIZES[0]}
        row["coarse_only_s"] = _median(args.repeats, ivf.quantizer.search, padded, searcher.nprobe)
        for nprobe in (1, 3, 12):
            row[f"search_nprobe_{nprobe}_s"] = _median(args.repeats, searcher.search, queries, 3, nprobe)
        sets = [_queries(searcher, n, rng) for n in SIZES]
        together = np.concatenate(sets)
        alone_t, together_t = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            alone = [searcher.search(q, 3)[1] for q in sets]
            alone_t.append(time.perf_counter() - started)
            started = time.perf_counter()
            _, rows = searcher.search(together, 3)
            together_t.append(time.perf_counter() - started)
        if not np.array_equal(np.concatenate(alone), rows):
            raise SystemExit("one search for all query sets found other neighbours than one search each")
        row["nine_searches_s"] = round(statistics.median(alone_t), 3)
        row["one_search_s"] = round(statistics.median(together_t), 3)
        row["one_search_ratio"] = round(row["one_search_s"] / row["nine_searches_s"], 3)
        results["searchers"][name] = row
        print(name, json.dumps(row), flush=True)
    results["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
