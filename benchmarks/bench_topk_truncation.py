"""How much of the exact softmax a per-pixel top-k approximation would have to keep (run by hand).

    python benchmarks/bench_topk_truncation.py [--label 0] [--seed 0]

Follows one exact class-conditional bbELS trajectory on the FashionMNIST subset (32×32, 20 steps,
the ``fashion-unet`` schedule of ``bench_local_score.py``). At every step it computes, with plain
PyTorch, the full logits of the interior pixels (the bulk of the work, one patch dictionary for all of
them) against every allowed library patch, and reports:

* ``need``: the share of the library patches whose weight is within e^-12 of the pixel's largest
  weight (median and 90th percentile over pixels) — what an approximation that is exact up to
  ~1e-5 must still visit;
* the error of the per-pixel weighted mean (the machine's x0 estimate) when the softmax is
  truncated to the exact top-k patches of every pixel (mean and max over pixels), for k = 64, 256,
  1024 and 5 % of the patches. A real index (FAISS) only approximates this top-k, so its error is
  at least this large.

These numbers bound what a per-pixel top-k approximate mode can reach: errors per step compound
over the 20 steps of the sampler.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_local_score import DEFAULT_DATA, load_library  # noqa: E402

from core.score.machine import denoise  # noqa: E402
from core.score.schedules import alpha_bar, sampling_times  # noqa: E402

SIZES = [25, 25, 25, 25, 23, 21, 15, 15, 13, 11, 11, 11, 9, 7, 7, 7, 5, 5, 3, 3]
TAU = 12.0


def interior_patches(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``(N·S, P²)`` zero-padded patches centred on the interior pixels (one channel)."""
    r, side = patch // 2, images.shape[-1]
    padded = F.pad(images, (r, r, r, r))
    grid = padded.unfold(2, patch, 1).unfold(3, patch, 1)[:, 0, r : side - r, r : side - r]
    return grid.reshape(-1, patch * patch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--label", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    torch.set_num_threads(1)
    library, labels = load_library(args.data, 32)
    members = library[labels == args.label]
    side = members.shape[-1]
    x = torch.randn(1, 1, side, side, generator=torch.Generator().manual_seed(args.seed))
    times = sampling_times(len(SIZES))
    print(f"class {args.label}: {members.shape[0]} library images; seed {args.seed}")
    print("| step | P | ā | interior pixels | patches | need median | need p90 | top-64 err mean / max | "
          "top-256 | top-1024 | top-5 % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k, patch in enumerate(SIZES):
        ab, ab_next = float(alpha_bar(times[k])), float(alpha_bar(times[k + 1]))
        a, c = math.sqrt(ab), 1.0 / (2.0 * (1.0 - ab))
        r = patch // 2
        library_patches = interior_patches(members, patch)
        centres = members[:, 0, r : side - r, r : side - r].reshape(-1)
        queries = interior_patches(x, patch)
        squares = library_patches.pow(2).sum(1)
        ks = (64, 256, 1024, max(1, library_patches.shape[0] // 20))
        need, errors = [], {kk: [] for kk in ks}
        for start in range(0, queries.shape[0], 64):
            logits = (2.0 * a * queries[start : start + 64] @ library_patches.T - a * a * squares) * c
            top = logits.max(1, keepdim=True).values
            need.append((logits >= top - TAU).float().mean(1))
            full = torch.softmax(logits, 1) @ centres
            for kk in ks:
                values, index = logits.topk(kk, 1)
                errors[kk].append((torch.softmax(values, 1) * centres[index]).sum(1) - full)
        need_all = torch.cat(need)
        cells = [f"{e.mean():.4f} / {e.max():.3f}" for e in (torch.cat(errors[kk]).abs() for kk in ks)]
        print(f"| {k} | {patch} | {ab:.3f} | {queries.shape[0]} | {library_patches.shape[0]} | "
              f"{need_all.median() * 100:.1f} % | {need_all.quantile(0.9) * 100:.1f} % | " + " | ".join(cells) + " |",
              flush=True)
        x0 = denoise(x, ab, members, "bbels", patch).x0
        eps = (x - a * x0) / math.sqrt(1.0 - ab)
        x = math.sqrt(ab_next) * x0 + math.sqrt(1.0 - ab_next) * eps


if __name__ == "__main__":
    main()
