"""Would a per-pixel top-k approximate mode meet r >= 0.99, and what would it cost? (run by hand)

    python benchmarks/bench_topk_trajectory.py [--from-step 7] [--k 64 256] [--skip-timing]

Part 1 (accuracy): the 10 FashionMNIST benchmark images of ``bench_local_score.py`` (one per class,
seed 0, exact class-conditional bbELS, 20 steps). From ``--from-step`` on, the interior pixels (one
patch dictionary for all of them) use only their **exact** top-k patches (plain PyTorch, all logits
computed, then truncated); edge and corner pixels stay exact. Prints Pearson r of the final images
against the exact ones, and the effect of small random perturbations of x0 (is the sampler
contracting?).

Part 2 (cost, one class-0 image, single thread): per step, the CPU time of the exact machine, of
the exact machine on the edge and corner pixels only, and of a FAISS IVF-Flat search of the interior
patches (nprobe 16, k 256), plus the index build time.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_local_score import DEFAULT_DATA, load_library, pearson  # noqa: E402
from bench_topk_truncation import SIZES, interior_patches  # noqa: E402

import core.score.local as local_module  # noqa: E402
from core.score.machine import denoise  # noqa: E402
from core.score.schedules import alpha_bar, sampling_times  # noqa: E402


def trajectory(library, labels, noise, classes, from_step=None, k=0, perturb=0.0, perturb_step=-1):
    """Final images; interior pixels use their exact top-k patches from ``from_step`` on."""
    times = sampling_times(len(SIZES))
    side = library.shape[-1]
    x = noise.clone()
    generator = torch.Generator().manual_seed(123)
    dictionaries: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for step, patch in enumerate(SIZES):
        ab, ab_next = float(alpha_bar(times[step])), float(alpha_bar(times[step + 1]))
        x0 = denoise(x, ab, library, "bbels", patch, labels, classes).x0
        if from_step is not None and step >= from_step:
            a, c, r = math.sqrt(ab), 1.0 / (2.0 * (1.0 - ab)), patch // 2
            for b in range(x.shape[0]):
                key = (int(classes[b]), patch)
                if key not in dictionaries:
                    members = library[labels == key[0]]
                    patches = interior_patches(members, patch)
                    centres = members[:, 0, r : side - r, r : side - r].reshape(-1)
                    dictionaries[key] = (patches, patches.pow(2).sum(1), centres)
                patches, squares, centres = dictionaries[key]
                queries = interior_patches(x[b : b + 1], patch)
                means = []
                for start in range(0, queries.shape[0], 128):
                    logits = (2.0 * a * queries[start : start + 128] @ patches.T - a * a * squares) * c
                    values, index = logits.topk(k, 1)
                    means.append((torch.softmax(values, 1) * centres[index]).sum(1))
                x0[b, 0, r : side - r, r : side - r] = torch.cat(means).view(side - 2 * r, side - 2 * r)
        if step == perturb_step:
            x0 = x0 + perturb * torch.randn(x0.shape, generator=generator)
        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1.0 - ab)
        x = math.sqrt(ab_next) * x0 + math.sqrt(1.0 - ab_next) * eps
    return x0.clamp(-1.0, 1.0)


def step_costs(library, labels) -> None:
    import faiss

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    members = library[labels == 0]
    times = sampling_times(len(SIZES))
    original = local_module.group_buckets

    def edges_and_corners(kind, height, width, patch):
        return [b for b in original(kind, height, width, patch) if not (b.groups == 1 and b.size > 1)]

    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    totals = {"exact": 0.0, "edges": 0.0, "search": 0.0, "build": 0.0}
    indexes = {}
    print("| step | P | exact machine | edge + corner pixels only | FAISS search (interior, k 256) |")
    print("|---|---|---|---|---|")
    for step, patch in enumerate(SIZES):
        ab = float(alpha_bar(times[step]))
        a = math.sqrt(ab)
        start = time.process_time()
        full = denoise(x, ab, members, "bbels", patch)
        exact_s = time.process_time() - start
        local_module.group_buckets = edges_and_corners
        try:
            start = time.process_time()
            denoise(x, ab, members, "bbels", patch)
            edges_s = time.process_time() - start
        finally:
            local_module.group_buckets = original
        if patch not in indexes:
            start = time.process_time()
            vectors = interior_patches(members, patch).numpy().astype(np.float32)
            dim, lists = vectors.shape[1], int(4 * math.sqrt(vectors.shape[0]))
            index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, lists)
            sample = np.random.default_rng(0).choice(vectors.shape[0], min(vectors.shape[0], 40 * lists), replace=False)
            index.train(vectors[sample])
            index.add(vectors)
            index.nprobe = 16
            indexes[patch] = index
            totals["build"] += time.process_time() - start
        queries = np.ascontiguousarray(interior_patches(x, patch).numpy() / a, dtype=np.float32)
        start = time.process_time()
        indexes[patch].search(queries, 256)
        search_s = time.process_time() - start
        totals["exact"] += exact_s
        totals["edges"] += edges_s
        totals["search"] += search_s
        print(f"| {step} | {patch} | {exact_s:.3f} s | {edges_s:.3f} s | {search_s:.3f} s |", flush=True)
        eps = (x - a * full.x0) / math.sqrt(1.0 - ab)
        ab_next = float(alpha_bar(times[step + 1]))
        x = math.sqrt(ab_next) * full.x0 + math.sqrt(1.0 - ab_next) * eps
    print(f"totals (CPU s): exact {totals['exact']:.2f}, edge + corner pixels {totals['edges']:.2f}, "
          f"FAISS search {totals['search']:.2f}, FAISS index build {totals['build']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from-step", type=int, nargs="+", default=[7])
    parser.add_argument("--k", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    library, labels = load_library(DEFAULT_DATA, 32)
    if not args.skip_accuracy:
        torch.set_num_threads(args.threads)
        classes = torch.arange(10)
        noise = torch.randn(10, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        exact = trajectory(library, labels, noise, classes)
        for perturb_step in (7, 12):
            r = pearson(exact, trajectory(library, labels, noise, classes, perturb=0.01, perturb_step=perturb_step))
            print(f"x0 + N(0, 0.01²) at step {perturb_step}: r min {min(r):.4f}, mean {sum(r) / len(r):.4f}")
        for from_step in args.from_step:
            for k in args.k:
                r = pearson(exact, trajectory(library, labels, noise, classes, from_step, k))
                print(f"exact top-{k} patches per interior pixel from step {from_step}: "
                      f"r min {min(r):.4f}, mean {sum(r) / len(r):.4f}", flush=True)
    if not args.skip_timing:
        step_costs(library, labels)


if __name__ == "__main__":
    main()
