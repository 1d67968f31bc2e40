"""Benchmark of the local score machines (run by hand, not a test).

Class-conditional boundary-broken ELS on the bundled FashionMNIST subset resized to 32×32, the
whole library (3,615 images), 20 DDIM steps with the fashion-unet patch schedule:

    python benchmarks/bench_local_score.py --per-class 2 --out /tmp/bench_local_score

Reports seconds per image, the achieved GFLOP/s of the distance work (nominal flops
``2 · queries · library patches · d`` summed over steps, the same count whichever way the machine
computes them) as a fraction of a plain float32 2048² matmul measured in the same run, and the
same for the approximate mode with its per-image Pearson r against the exact images. Saves a grid
PNG (exact row on top of approximate row per class) and ``summary.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.score import patch_schedule, sample  # noqa: E402
from core.score.cost import step_work  # noqa: E402
from core.score.paths import StepShape  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion_mnist_3615.npz"


def load_library(path: Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = np.load(path)
    images = torch.from_numpy(data["images"]).float().div(127.5).sub(1.0).unsqueeze(1)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images.contiguous(), torch.from_numpy(data["labels"]).long()


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def nominal_flops(labels: torch.Tensor, class_labels: torch.Tensor, size: int, sizes: list[int]) -> float:
    total = 0.0
    for label in torch.unique(class_labels).tolist():
        batch = int((class_labels == label).sum())
        members = int((labels == label).sum())
        for p in sizes:
            total += step_work(StepShape("bbels", size, size, 1, batch, members, p))[0]
    return total


def gemm_efficiency(library: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor, sizes: list[int]) -> dict:
    """Achieved rate of the BLAS GEMMs of one single-threaded class-0 run (torch profiler flop counts).

    The distances of long patch vectors (and of the bbELS edge strips) are BLAS GEMMs; short ones
    (d + 2 <= 32) are computed inside the fused native kernel together with the exponentials and
    are not counted here.
    """
    from torch.profiler import ProfilerActivity, profile

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    members = library[labels == int(labels.min())]
    try:
        single = matmul_gflops()
        with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
            start = time.perf_counter()
            sample(members, noise[:1], "bbels", sizes)
            seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    gemm = [e for e in prof.key_averages() if e.key in ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")]
    flops = sum(e.flops for e in gemm)
    gemm_seconds = sum(e.self_cpu_time_total for e in gemm) / 1e6
    rate = flops / gemm_seconds / 1e9 if gemm_seconds > 0 else None  # None: no step took the GEMM path
    return {
        "single_thread_matmul_gflops": round(single, 1),
        "gemm_gflop": round(flops / 1e9, 1),
        "gemm_seconds": round(gemm_seconds, 2),
        "gemm_gflops": None if rate is None else round(rate, 1),
        "gemm_fraction_of_matmul": None if rate is None else round(rate / single, 3),
        "run_seconds_profiled": round(seconds, 2),
    }


def save_grid(rows: list[torch.Tensor], path: Path) -> None:
    """Each row tensor is ``(B, 1, H, W)`` in [-1, 1]; rows stacked vertically."""
    tiles = [torch.cat(list(r[:, 0]), dim=1) for r in rows]
    grid = torch.cat(tiles, dim=0).clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).numpy()
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(path)


def pearson(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-class", type=int, default=2, help="samples per class (10 classes)")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--preset", default="fashion-unet")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-k", type=int, default=40, help="library images per sample (approximate)")
    parser.add_argument("--skip-approximate", action="store_true")
    parser.add_argument("--gemm-too", action="store_true", help="also time the exact run on the GEMM path only")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_local_score"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    library, labels = load_library(args.data, args.size)
    classes = torch.unique(labels)
    class_labels = classes.repeat_interleave(args.per_class)
    noise = torch.randn(len(class_labels), 1, args.size, args.size, generator=torch.Generator().manual_seed(args.seed))
    sizes = patch_schedule(args.preset, args.size, args.steps)
    flops = nominal_flops(labels, class_labels, args.size, sizes)
    matmul = matmul_gflops()

    def progress(step: int, total: int, _x0: torch.Tensor) -> None:
        logging.info("  step %d/%d (%.1f s)", step, total, time.perf_counter() - start)

    logging.info("exact: %d images, patch sizes %s", len(class_labels), sizes)
    load_before = os.getloadavg()[0]
    start, cpu_start = time.perf_counter(), time.process_time()
    exact = sample(library, noise, "bbels", sizes, labels=labels, class_labels=class_labels, on_step=progress)
    exact_seconds = time.perf_counter() - start
    exact_cpu = time.process_time() - cpu_start
    gflops = flops / exact_seconds / 1e9
    summary = {
        "command": " ".join(sys.argv),
        "library_images": int(library.shape[0]),
        "images": len(class_labels),
        "size": args.size,
        "patch_sizes": sizes,
        "threads": args.threads,
        "matmul_gflops": round(matmul, 1),
        "nominal_gflop_per_image": round(flops / len(class_labels) / 1e9, 1),
        "load_average_before": round(load_before, 2),
        "exact": {
            "seconds_total": round(exact_seconds, 1),
            "seconds_per_image": round(exact_seconds / len(class_labels), 2),
            "cpu_seconds_per_image": round(exact_cpu / len(class_labels), 2),
            "gflops": round(gflops, 1),
            "fraction_of_matmul": round(gflops / matmul, 3),
        },
    }
    if args.gemm_too:
        from core.score import machine

        chooser = machine.choose_path
        machine.choose_path = lambda *a, **k: "gemm"  # the path every step took before the offsets path
        try:
            start = time.perf_counter()
            gemm_only = sample(library, noise, "bbels", sizes, labels=labels, class_labels=class_labels)
            gemm_seconds = time.perf_counter() - start
        finally:
            machine.choose_path = chooser
        summary["exact_gemm_path_only"] = {
            "seconds_per_image": round(gemm_seconds / len(class_labels), 2),
            "ratio_to_chosen_paths": round(gemm_seconds / exact_seconds, 2),
            "max_pixel_difference": float((gemm_only.images - exact.images).abs().max()),
        }
        logging.info("GEMM path only: %.2f s/image", gemm_seconds / len(class_labels))
    logging.info("GEMM efficiency (class %d, one thread, profiled)", int(labels.min()))
    summary["exact_gemm"] = gemm_efficiency(library, labels, noise, sizes)
    rows = [exact.images]
    if not args.skip_approximate:
        from core.score.ivf import INDEXES

        def approximate_run() -> tuple[object, float, float]:
            start_time, cpu_time = time.perf_counter(), time.process_time()
            result = sample(
                library,
                noise,
                "bbels",
                sizes,
                labels=labels,
                class_labels=class_labels,
                on_step=progress,
                approximate=True,
                top_k=args.top_k,
            )
            return result, time.perf_counter() - start_time, time.process_time() - cpu_time

        # The patch index (k-means lists per class and patch size) is built once per library and
        # kept: time it on its own, single-threaded per class like the runs, then time the runs.
        logging.info("approximate: building the patch index")
        build_start = time.perf_counter()
        build_cpu = time.process_time()
        INDEXES.clear()
        approximate_run()
        build_seconds = time.perf_counter() - build_start
        build_cpu = time.process_time() - build_cpu
        logging.info("approximate (patch index ready)")
        start = time.perf_counter()
        approx, approx_seconds, approx_cpu = approximate_run()
        r = pearson(exact.images, approx.images)
        summary["approximate"] = {
            "method": "patch index (els/bbels on CPU)",
            "first_run_with_index_build_seconds": round(build_seconds, 1),
            "index_build_cpu_seconds_per_class": round((build_cpu - approx_cpu) / len(classes), 1),
            "seconds_total": round(approx_seconds, 1),
            "seconds_per_image": round(approx_seconds / len(class_labels), 2),
            "cpu_seconds_per_image": round(approx_cpu / len(class_labels), 2),
            "speedup": round(exact_seconds / approx_seconds, 2),
            "cpu_speedup": round(exact_cpu / approx_cpu, 2),
            "pearson_r_min": round(min(r), 4),
            "pearson_r_mean": round(sum(r) / len(r), 4),
            "pearson_r": [round(v, 4) for v in r],
        }
        rows.append(approx.images)
    grid_path = args.out / "bbels_samples.png"
    save_grid(rows, grid_path)
    summary["grid_png"] = str(grid_path)
    summary["load_average_after"] = round(os.getloadavg()[0], 2)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
