"""Benchmark: how fast FAISS scans the analyzer's search lists (issue 18, query speed at 100,000 pictures).

    python benchmarks/bench_search_lists.py --out benchmarks/results/search_lists.json
    python benchmarks/bench_search_lists.py --vectors /tmp/corpus/data/indexes/bench/KEY/shards \
        --out benchmarks/results/search_lists_real.json

Two questions, in one run each:

1. **Padding.** The descriptors have 19 dimensions; FAISS scans 8-bit (SQ8) lists with SIMD only when the
   dimension is a multiple of 8. The same vectors in IVF lists at 19 dimensions and padded with zeros to 24
   (``core.analyzer.search.for_faiss``): seconds for the queries, ns a scanned code, recall@3 after the exact
   re-ranking the studio does. ``--vectors``: the ``scale-16.vec.npy`` files of the first three shards of a real
   index instead of clustered random vectors.
2. **Stacked shards.** The studio keeps one list file per shard, memory-mapped and stacked
   (``ShardedFaissSearch``); the same lists merged into one in-memory list set, searched with the same queries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.analyzer.search import (  # noqa: E402
    ShardedFaissSearch,
    _reranked,
    for_faiss,
    padded_dim,
    trained_ivf,
)

NLIST = 1_000
NPROBE = 12
QUERIES = 2_000


def _clustered(count: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((4_000, dim)).astype(np.float32)
    return (centres[rng.integers(0, 4_000, count)] + 0.3 * rng.standard_normal((count, dim))).astype(np.float32)


def _real(folder: Path) -> np.ndarray:
    files = sorted(folder.glob("*/scale-16.vec.npy"))[:3]
    if not files:
        raise SystemExit(f"no */scale-16.vec.npy under {folder}")
    return np.concatenate([np.load(f, mmap_mode="r").astype(np.float32) for f in files])


def _sq8(sample: np.ndarray, dim: int):  # noqa: ANN202 - faiss index
    import faiss

    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, NLIST, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2)
    index.train(for_faiss(sample, dim))
    return index


def padding(vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    import faiss

    rng = np.random.default_rng(1)
    sample = vectors[rng.choice(vectors.shape[0], min(vectors.shape[0], 40 * NLIST), replace=False)]
    out = {}
    for dim in (vectors.shape[1], padded_dim(vectors.shape[1])):
        index = _sq8(sample, dim)
        index.add(for_faiss(vectors, dim))
        params = faiss.SearchParametersIVF(nprobe=NPROBE)
        padded = for_faiss(queries, dim)
        index.search(padded[:100], 12, params=params)  # warm-up
        started = time.perf_counter()
        _, found = index.search(padded, 12, params=params)
        seconds = time.perf_counter() - started
        _, top = _reranked(queries, found, vectors, 3)
        recall = float(np.mean([len(set(top[i]) & set(truth[i])) / 3 for i in range(queries.shape[0])]))
        codes = queries.shape[0] * NPROBE * vectors.shape[0] / NLIST
        out[f"d{dim}"] = {
            "seconds": round(seconds, 3),
            "ns_per_code": round(seconds * 1e9 / codes, 2),
            "recall_at_3": round(recall, 4),
        }
        print(dim, out[f"d{dim}"], flush=True)
    return out


def stacked(vectors: np.ndarray, queries: np.ndarray, shards: int) -> dict:
    import faiss

    dim = padded_dim(vectors.shape[1])
    rng = np.random.default_rng(2)
    sample = vectors[rng.choice(vectors.shape[0], min(vectors.shape[0], 40 * NLIST), replace=False)]
    params = faiss.SearchParametersIVF(nprobe=NPROBE)
    padded = for_faiss(queries, dim)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trained = trained_ivf(sample, vectors.shape[0])
        sq8 = faiss.IndexIVFScalarQuantizer(
            faiss.clone_index(trained.quantizer), dim, trained.nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2
        )
        sq8.train(for_faiss(sample, dim))
        faiss.write_index(sq8, str(folder / "trained.faiss"))
        merged = faiss.read_index(str(folder / "trained.faiss"))
        lists = []
        for i, part in enumerate(np.array_split(np.arange(vectors.shape[0]), shards)):
            filled = faiss.read_index(str(folder / "trained.faiss"))
            filled.add_with_ids(for_faiss(vectors[part], dim), part.astype(np.int64))
            faiss.write_index(filled, str(folder / f"{i}.faiss"))
            lists.append(folder / f"{i}.faiss")
            merged.add_with_ids(for_faiss(vectors[part], dim), part.astype(np.int64))
        search = ShardedFaissSearch(folder / "trained.faiss", lists, NPROBE)
        out = {"shards": shards, "lists": int(trained.nlist)}
        for name, index in (("stacked_mapped", search.index), ("merged_in_memory", merged)):
            index.search(padded[:100], 12, params=params)
            runs = []
            for _ in range(3):
                started = time.perf_counter()
                index.search(padded, 12, params=params)
                runs.append(time.perf_counter() - started)
            out[name] = round(min(runs), 3)
        print(out, flush=True)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=Path, help="an index's shards folder: its scale-16 descriptors")
    parser.add_argument("--count", type=int, default=1_000_000, help="clustered random vectors (without --vectors)")
    parser.add_argument("--shards", type=int, default=49)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import faiss

    rng = np.random.default_rng(0)
    vectors = _real(args.vectors) if args.vectors else _clustered(args.count, 19, rng)
    queries = vectors[rng.choice(vectors.shape[0], QUERIES, replace=False)]
    queries = queries + 0.05 * rng.standard_normal(queries.shape).astype(np.float32)
    exact = faiss.IndexFlatL2(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, 3)
    results = {
        "vectors": list(vectors.shape),
        "source": str(args.vectors) if args.vectors else "clustered random",
        "threads": faiss.omp_get_max_threads(),
        "load_before": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "padding": padding(vectors, queries, truth),
        "stacked": stacked(vectors, queries, args.shards),
        "load_after": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
    print(json.dumps(results, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
