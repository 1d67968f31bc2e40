"""Benchmark of the two exact paths of the local machines, and the fit of their cost model.

Times one machine evaluation per (kind, size, patch size, path) on a built-in library, at the
noise level of the step that uses that patch size in a 20-step run, with a noisy library-like
image as the query (a flipped library image: realistic, not itself in the library). Prints the
measured and estimated seconds (``core.score.paths.step_seconds``) and least-squares constants for
``core/score/paths.py``:

    python benchmarks/bench_local_paths.py --library photos --sizes 32 64 --out /tmp/bench_paths.json

``--include`` adds the steps of earlier outputs (other libraries) to the fit.
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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.score import denoise, patch_schedule  # noqa: E402
from core.score.paths import StepShape, gemm_work, offset_features, step_seconds  # noqa: E402
from core.score.schedules import alpha_bar  # noqa: E402


def load(library: str, size: int) -> torch.Tensor:
    os.environ.setdefault("MOSAIC_DATA_DIR", tempfile.mkdtemp(prefix="mosaic-bench-"))
    from core.libraries import LibraryManager

    return LibraryManager().load(library, size).images


def fit_costs(rows: list[dict]) -> dict:
    """Non-negative least squares on relative error: the offsets path per kind (the terms of
    ``core.score.paths.OffsetCosts``) and the GEMM path (flops, pairs, step)."""
    from scipy.optimize import nnls

    fit: dict = {"offsets": {}}
    for kind in sorted({r["kind"] for r in rows if "offsets" in r}):
        off = [r for r in rows if "offsets" in r and r["kind"] == kind]
        terms = sorted({name for r in off for name in r["features"]})
        a = np.array([[r["features"].get(name, 0.0) for name in terms] + [1.0] for r in off])
        y = np.array([r["offsets"] for r in off])
        costs = nnls(a / y[:, None], np.ones(len(y)))[0]
        fit["offsets"][kind] = dict(zip([*terms, "step"], costs.tolist(), strict=True))
        for r, predicted in zip(off, a @ costs, strict=True):
            r["offsets_fitted"] = float(predicted)
    gem = [r for r in rows if "gemm" in r]
    if gem:
        a = np.array([[r["flops"], r["pairs"], 1.0] for r in gem])
        y = np.array([r["gemm"] for r in gem])
        fit["gemm"] = nnls(a / y[:, None], np.ones(len(y)))[0].tolist()
    return fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", default="photos")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--kinds", nargs="+", default=["ls", "els", "bbels"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--images", type=int, default=0, help="library images used (0: all)")
    parser.add_argument("--max-gemm-seconds", type=float, default=40.0, help="skip GEMM steps estimated longer")
    parser.add_argument("--every", type=int, default=3, help="time every n-th step of the schedule")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_local_paths.json"))
    parser.add_argument("--include", type=Path, nargs="*", default=[], help="earlier outputs whose steps join the fit")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        library = load(args.library, size)
        if args.images:
            library = library[: args.images]
        n, channels = library.shape[:2]
        gen = torch.Generator().manual_seed(0)
        clean = library[:1].flip(-1).expand(args.batch, -1, -1, -1)
        schedule = patch_schedule("balanced", size, 20)
        for kind in args.kinds:
            seen = set()
            for step in range(0, 20, args.every):
                patch = schedule[step] if kind != "els" else min(schedule[step], 2 * size - 1)
                if patch in seen:
                    continue
                seen.add(patch)
                ab = float(alpha_bar(1.0 - (step + 1) / 20))
                noise = torch.randn(clean.shape, generator=gen)
                x = ab**0.5 * clean + (1 - ab) ** 0.5 * noise
                shape = StepShape(kind, size, size, channels, args.batch, n, patch)
                estimate = step_seconds(shape, alpha_bar=ab)
                flops, pairs = gemm_work(shape)
                row = {"size": size, "kind": kind, "patch": patch, "t": round(1.0 - (step + 1) / 20, 2),
                       "flops": flops, "pairs": pairs, "features": offset_features(shape, alpha_bar=ab),
                       "noise": 1.0 - ab, "estimate": estimate}
                results = {}
                for path in ("offsets", "gemm"):
                    if path == "gemm" and estimate["gemm"] > args.max_gemm_seconds:
                        continue
                    start = time.perf_counter()
                    results[path] = denoise(x, ab, library, kind, patch, path=path)
                    row[path] = time.perf_counter() - start
                if len(results) == 2:
                    row["max_diff"] = float((results["gemm"].x0 - results["offsets"].x0).abs().max())
                rows.append(row)
                measured = "  ".join(
                    f"{p} {row[p]:6.2f} s (est {estimate[p]:6.2f})" for p in ("offsets", "gemm") if p in row
                )
                print(f"{size:4d} px {kind:5s} P={patch:3d} t={row['t']:.2f}  {measured}", flush=True)
    earlier = [row for path in args.include for row in json.loads(path.read_text())["rows"]]
    fit = fit_costs(rows + earlier)
    for kind, costs in fit["offsets"].items():
        print(f"offsets fit for {kind}:", {name: f"{value:.3g}" for name, value in costs.items()})
    print("gemm fit (seconds per flop, per pair, per step):", fit.get("gemm"))
    args.out.write_text(json.dumps({"rows": rows, "fit": fit, "load": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
