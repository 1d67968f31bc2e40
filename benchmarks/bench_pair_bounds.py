"""How many (pixel, library patch) pairs an exact lower bound could skip (issue 17: is pair pruning worth a kernel?).

A pair whose logit is more than 80 below its pixel's maximum adds nothing in float32 (``LOGIT_FLOOR``); a pair
can be skipped *exactly* when a lower bound of its distance ``D = |x_p - sqrt(ā) φ_q|²`` already exceeds the
pixel's smallest distance by ``160 (1 - ā)``. The cheap bounds here cost O(C) per pair:

- patch means: ``D ≥ P² Σ_c (m_c(x_p) - sqrt(ā) m_c(φ_q))²``;
- means and residual norms: the above plus ``(|x̃_p| - sqrt(ā) |φ̃_q|)²`` (mean-free parts, triangle inequality).

For every step with patches up to 31 px, the fraction of pairs that SURVIVE each bound (must still be computed)
is measured on 64 random interior pixels against every library position where the patch fits, using the noisy
image the sampler really denoises at that step (ELS on the built-in photos library, seed 11).

    python benchmarks/bench_pair_bounds.py --library photos --size 64
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", default="photos")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--pixels", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("MOSAIC_DATA_DIR", tempfile.mkdtemp(prefix="mosaic-bench-"))

    from core.libraries import LibraryManager
    from core.score import sample, seeded_noise
    from core.score.schedules import alpha_bar, patch_schedule, sampling_plan

    torch.manual_seed(0)
    lib = LibraryManager().load(args.library, args.size).images
    schedule = patch_schedule("fashion-unet", args.size)
    plan = sampling_plan("uniform", schedule)
    noise = seeded_noise([11], lib.shape[1], args.size)
    xs = [noise.clone()]

    def on_step(k: int, total: int, x0: torch.Tensor) -> None:  # the noisy input of the next step
        t, t_next, _ = plan[k - 1]
        a, a_next = alpha_bar(t), alpha_bar(t_next)
        eps = (xs[-1] - math.sqrt(a) * x0) / math.sqrt(max(1 - a, 1e-12))
        xs.append(math.sqrt(a_next) * x0 + math.sqrt(1 - a_next) * eps)

    sample(lib, noise, "els", schedule, on_step=on_step)
    n, c, h, w = lib.shape
    print("step  t     P   survive(means+norms)  survive(means)")
    for k, (t, _, p) in enumerate(plan):
        if p > 31:
            continue
        a, x, r = alpha_bar(t), xs[k], p // 2
        sa, margin = math.sqrt(a), 160 * (1 - a)
        ones = torch.ones(1, 1, p, p)
        lib_mean = F.conv2d(lib.reshape(n * c, 1, h, w), ones).reshape(n, c, h - 2 * r, w - 2 * r) / p**2
        lib_sq = F.conv2d((lib**2).sum(1, keepdim=True), ones)[:, 0]
        lib_res = (lib_sq - p**2 * (lib_mean**2).sum(1)).clamp_min(0).sqrt()
        ys = torch.randint(r, h - r, (args.pixels,)).tolist()
        xx = torch.randint(r, w - r, (args.pixels,)).tolist()
        both, means = [], []
        for y0, x0 in zip(ys, xx, strict=True):
            q = x[0, :, y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
            d = (q**2).sum() - 2 * sa * F.conv2d(lib, q[None])[:, 0] + a * lib_sq
            q_mean = q.mean((1, 2))
            q_res = ((q - q_mean[:, None, None]) ** 2).sum().sqrt()
            bound_means = p**2 * ((q_mean[None, :, None, None] - sa * lib_mean) ** 2).sum(1)
            bound = bound_means + (q_res - sa * lib_res) ** 2
            assert bool((bound <= d * 1.001 + 0.05).all()), "not a lower bound"
            both.append(float((bound <= d.min() + margin).float().mean()))
            means.append(float((bound_means <= d.min() + margin).float().mean()))
        print(f"{k:4d}  {t:.2f}  {p:2d}  {sum(both) / len(both):20.3f}  {sum(means) / len(means):14.3f}", flush=True)


if __name__ == "__main__":
    main()
