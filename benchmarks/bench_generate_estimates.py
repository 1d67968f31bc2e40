"""Benchmark: the local score engine's estimates against measured runs (time and peak memory).

Every setting runs in a fresh Python process (so that its peak RSS is its own): the engine's plan
(estimated seconds and memory), then ``LocalScoreEngine.generate`` timed, one image after another as
the studio's jobs make them, with the process's RSS
before the run and its peak RSS after. Fast drafts also report the Pearson r of their first image
against the exact image of the same setting and seed (run alongside). Prints a Markdown table:

    python benchmarks/bench_generate_estimates.py --out /tmp/bench_estimates.json
    python benchmarks/bench_generate_estimates.py --settings photos:128:bbels:1 photos:128:bbels:1:draft

A setting is ``library:size:machine:count[:draft|:forced-draft]``; ``forced-draft`` runs the fast draft
even where the engine would run exact instead (through ``core.score.sample``), to measure it. The
built-in libraries need no download.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_SETTINGS = [
    "faces:32:bbels:2",
    "faces:32:bbels:2:draft",
    "faces:16:bbels:1",
    "faces:64:bbels:1",
    "photos:32:bbels:1",
    "photos:64:bbels:1",
    "photos:64:bbels:1:draft",
    "photos:96:bbels:1",
    "photos:32:els:1",
    "photos:64:ls:2",
    "photos:32:is:2",
    "digits:32:bbels:4",
    "digits:16:els:2",
]

CHILD = r"""
import json, os, resource, sys, time
import numpy as np
from core.engines.local_score import LocalScoreEngine, LocalScoreRequest

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

library, size, machine, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
engine = LocalScoreEngine(device="cpu")
request = LocalScoreRequest(seed=11, count=count, library=library, size=size, machine=machine, approximate=mode != "0")
plan = engine.plan(request)
lib = engine.libraries.load(library, size)  # prepared outside the timed run, as the page does
before = rss_mb()
start = time.perf_counter()
if mode == "forced":
    from core import config
    from core.engines.base import GeneratedImage
    from core.images import from_tensor
    from core.score import sample, seeded_noise
    noise = seeded_noise(request.seeds(), lib.images.shape[1], size)
    folder = config.score_indexes_dir()
    result = sample(lib.images, noise, machine, plan["schedule"], approximate=True, index_dir=folder)
    images = [GeneratedImage(from_tensor(result.images[0]), 11, "local-score", {"approximate_method": "forced draft"})]
    from core.score import estimate_cost
    from core.score.approximate import default_top_k, uses_index
    info = plan["library"]
    plan["cost"] = estimate_cost(info.count, info.channels, size, count, machine, plan["patch_sizes"],
                                 approximate_top_k=default_top_k(info.count), indexed=uses_index(machine, "cpu"))
    plan["approximate"] = True
else:  # one image after another, as the studio's jobs make them (core.engines.saving)
    from dataclasses import replace
    # each image is saved and let go before the next (its per-step arrays are not kept), as in the studio
    images, pixels = [], []
    for seed in request.seeds():
        image = engine.generate(replace(request, seed=seed, count=1))[0]
        pixels.append(np.asarray(image.image, dtype=np.float32))
        if not images:
            images.append(image)
        del image
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out = {
    "seconds": seconds, "estimate": plan["cost"].seconds_estimate, "rss_before_mb": before, "peak_rss_mb": peak,
    "estimate_mb": plan["cost"].peak_bytes / 2**20, "draft_used": plan["approximate"],
    "method": images[0].params.get("approximate_method"),
}
if mode == "forced":
    pixels = [np.asarray(image.image, dtype=np.float32) for image in images]
np.save(sys.argv[6], np.stack(pixels))
print(json.dumps(out))
"""


def run(setting: str, data_dir: str, tmp: Path) -> dict:
    parts = setting.split(":")
    library, size, machine, count = parts[0], parts[1], parts[2], parts[3]
    mode = {"draft": "1", "forced-draft": "forced"}.get(parts[4], "0") if len(parts) > 4 else "0"
    image = tmp / (setting.replace(":", "_") + ".npy")
    env = dict(os.environ, MOSAIC_DATA_DIR=data_dir, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", CHILD, library, size, machine, count, mode, str(image)],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )
    if result.returncode != 0:
        return {"setting": setting, "error": result.stderr[-500:]}
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row.update(setting=setting, image=str(image))
    return row


def pearson(a_path: str, b_path: str) -> list[float]:
    """Pearson r of every image of one run against the same image of the other."""
    import numpy as np

    a, b = np.load(a_path), np.load(b_path)
    return [float(np.corrcoef(x.ravel(), y.ravel())[0, 1]) for x, y in zip(a, b, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_generate_estimates.json"))
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="mosaic-bench-")
    tmp = Path(tempfile.mkdtemp(prefix="mosaic-bench-images-"))
    rows = []
    print("| setting | measured | estimated | ratio | peak RSS (run adds) | estimated memory | ratio | note |")
    print("|---|---|---|---|---|---|---|---|")
    for setting in args.settings:
        row = run(setting, data_dir, tmp)
        rows.append(row)
        if "error" in row:
            print(f"| {setting} | failed: {row['error']!r} |")
            continue
        base = setting.replace(":forced-draft", "").replace(":draft", "")
        exact = next((r for r in rows if r.get("setting") == base and "image" in r), None)
        note = row.get("method") or ""
        if setting.endswith("draft") and exact is not None and row["draft_used"]:
            row["r_vs_exact"] = pearson(row["image"], exact["image"])
            low, mean = min(row["r_vs_exact"]), sum(row["r_vs_exact"]) / len(row["r_vs_exact"])
            note += f", r vs exact: min {low:.4f}, mean {mean:.4f} over {len(row['r_vs_exact'])} images"
        added = row["peak_rss_mb"] - row["rss_before_mb"]
        print(
            f"| {setting} | {row['seconds']:.1f} s | {row['estimate']:.1f} s | {row['estimate'] / row['seconds']:.2f} "
            f"| {row['peak_rss_mb']:.0f} MB ({added:.0f} MB) | {row['estimate_mb']:.0f} MB "
            f"| {row['estimate_mb'] / max(added, 1):.2f} | {note} |",
            flush=True,
        )
    args.out.write_text(json.dumps({"rows": rows, "load": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
