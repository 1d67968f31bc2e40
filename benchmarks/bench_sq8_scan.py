"""Benchmark: the native scan of 8-bit search lists against FAISS's scan of the same lists (issue 18).

    MOSAIC_DATA_DIR=/tmp/corpus/data python benchmarks/bench_sq8_scan.py \
        --index /tmp/corpus/data/indexes/bench/pixel-w128-s8.16.32-2de3fab6aa --out benchmarks/results/sq8_scan.json

For each searcher named (``--stems``; default the whole-size 16 px one and the largest reduced size), the same
queries (library descriptors from the searcher's own lists, moved by a little noise, as many as an analysis
asks) probe the same lists (chosen once), and both scans run in turn, ``--repeats`` times, on the threads torch
has: FAISS's ``search_preassigned`` (what the studio used before) and :func:`core.score.native.sq8_scan` (what
``ShardedFaissSearch`` uses now). Reported: the median seconds of each, their ratio, the codes scanned, and how
many of the neighbours found are the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.analyzer.search import ShardedFaissSearch, for_faiss  # noqa: E402


def _searcher(index: Path, stem: str) -> ShardedFaissSearch:
    manifest = json.loads((index / "manifest.json").read_text())
    meta = manifest["stems"][stem]
    merged = (meta.get("merged") or {}).get("file")
    if not merged:
        raise SystemExit(f"{stem}: its lists are not merged into one file; nothing for the kernel to scan")
    return ShardedFaissSearch(index / "trained" / f"{stem}.faiss", [index / merged], nprobe=12)


def run(index: Path, stem: str, queries: int, nprobe: int, k: int, repeats: int) -> dict:
    import faiss

    from core.score import native

    searcher = _searcher(index, stem)
    lists = searcher._sq8_lists()
    if lists is None:
        raise SystemExit(f"{stem}: the kernel cannot scan these lists (no kernel, or not 8-bit lists)")
    rng = np.random.default_rng(0)
    # vectors of the searcher's own lists (decoded), moved a little: queries that find real neighbours
    ivf = searcher._ivf
    picked = rng.choice(ivf.nlist, size=queries)
    base = lists.centres[picked] + lists.vmin + rng.random((queries, ivf.d)).astype(np.float32) * lists.vdiff
    padded = for_faiss(base + 0.02 * rng.standard_normal(base.shape).astype(np.float32), ivf.d)
    centre_dist, probed = searcher._choose_lists(padded, nprobe)
    times: dict[str, list[float]] = {"faiss": [], "native": []}
    found: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        start = time.perf_counter()
        dist = np.empty((queries, k), dtype=np.float32)
        ids = np.empty((queries, k), dtype=np.int64)
        ivf.search_preassigned_c(queries, faiss.swig_ptr(padded), k, faiss.swig_ptr(probed),
                                 faiss.swig_ptr(centre_dist), faiss.swig_ptr(dist), faiss.swig_ptr(ids), False,
                                 faiss.SearchParametersIVF(nprobe=nprobe))
        times["faiss"].append(time.perf_counter() - start)
        found["faiss"] = ids
        start = time.perf_counter()
        _, found["native"] = native.sq8_scan(padded, probed, lists.centres, lists.data, lists.layout, lists.vmin,
                                             lists.vdiff, k, lists.active)
        times["native"].append(time.perf_counter() - start)
    same = np.mean([len(set(a) & set(b)) / k for a, b in zip(found["faiss"], found["native"], strict=True)])
    codes = int(lists.layout[probed[probed >= 0], 1].sum())
    faiss_s, native_s = float(np.median(times["faiss"])), float(np.median(times["native"]))
    return {
        "stem": stem, "vectors": searcher.count, "lists": int(ivf.nlist), "queries": queries, "nprobe": nprobe,
        "k": k, "codes_scanned": codes, "faiss_s": round(faiss_s, 4), "native_s": round(native_s, 4),
        "faiss_over_native": round(faiss_s / native_s, 2), "same_neighbours": round(float(same), 4),
        "faiss_ns_per_code": round(faiss_s / codes * 1e9, 2), "native_ns_per_code": round(native_s / codes * 1e9, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="an index folder (with manifest.json)")
    parser.add_argument("--stems", default="scale-16,level-0.84-scale-16")
    parser.add_argument("--queries", type=int, default=2600)
    parser.add_argument("--nprobe", type=int, default=12)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import torch

    rows = [run(args.index, stem, args.queries, args.nprobe, args.k, args.repeats) for stem in args.stems.split(",")]
    report = {"threads": torch.get_num_threads(), "rows": rows}
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
