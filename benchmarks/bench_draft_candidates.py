"""Benchmark: how many candidate images a fast draft must keep to follow the exact image.

For each seed, runs the exact sampler once and the candidate-image draft
(``core.score.sample(..., approximate=True, draft="images")``) with every ``top_k`` asked for
(optionally another share of exact steps), and prints the time and the Pearson r of each draft
against the exact image from the same noise:

    python benchmarks/bench_draft_candidates.py --library photos --size 64 --seeds 0 1 2 --top-k 120 160 200

With ``--cache DIR`` the exact images are kept there (one file per library, size, machine and seed)
and reused by later runs: at 128 px the exact run is most of the benchmark's time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.score import approximate, patch_schedule, sample  # noqa: E402


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", default="photos")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--machine", default="bbels")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--top-k", type=int, nargs="+", default=[120, 160, 200])
    parser.add_argument("--exact-fraction", type=float, default=None, help="default: the size's own (CANDIDATE_DRAFTS)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_draft_candidates.json"))
    parser.add_argument("--cache", type=Path, default=None, help="a folder for the exact images")
    args = parser.parse_args()
    os.environ.setdefault("MOSAIC_DATA_DIR", tempfile.mkdtemp(prefix="mosaic-bench-"))
    from core.libraries import LibraryManager

    library = LibraryManager().load(args.library, args.size).images
    schedule = patch_schedule("balanced", args.size, 20)
    if args.exact_fraction is not None:
        settings = approximate.candidate_draft(args.size)
        approximate.CANDIDATE_DRAFTS = {0: replace(settings, exact_fraction=args.exact_fraction)}
    exact_fraction = approximate.candidate_draft(args.size).exact_fraction
    rows = []
    for seed in args.seeds:
        noise = torch.randn((1, library.shape[1], args.size, args.size), generator=torch.Generator().manual_seed(seed))
        cached = args.cache / f"{args.library}-{args.size}-{args.machine}-{seed}.pt" if args.cache else None
        if cached is not None and cached.exists():
            stored = torch.load(cached, weights_only=True)
            exact, exact_seconds = stored["image"], float(stored["seconds"])
        else:
            start = time.perf_counter()
            exact = sample(library, noise, args.machine, schedule).images
            exact_seconds = time.perf_counter() - start
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"image": exact, "seconds": exact_seconds}, cached)
        for top_k in args.top_k:
            start = time.perf_counter()
            draft = sample(library, noise, args.machine, schedule, approximate=True, top_k=top_k, draft="images")
            row = {
                "seed": seed,
                "top_k": top_k,
                "exact_fraction": exact_fraction,
                "exact_s": round(exact_seconds, 1),
                "draft_s": round(time.perf_counter() - start, 1),
                "r": round(pearson(draft.images, exact), 5),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps({"rows": rows, "load": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
