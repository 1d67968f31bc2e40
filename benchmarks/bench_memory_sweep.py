"""Benchmark: the peak memory of every setting the Generate page offers on the built-in libraries.

The page offers 1,680 local score settings on the built-in libraries (3 libraries × 7 sizes × 4
machines × 5 presets × fast draft or not × 2 time grids; a request's images are made one after
another, so the image count does not change the peak). Running them all whole would take days
(the longest, ``digits`` at 128 px with ``els``, about 2 hours each). What sets a run's peak is its
heaviest machine evaluation, and an evaluation allocates everything it holds (its state, scratch
and the buffers of a library chunk) by its second library chunk. So each setting runs through the
engine as the studio runs it (``LocalScoreEngine.generate``: plan, sampler, fast-draft choice,
patch-index builds, previews, results), with every machine evaluation cut short after ``--polls``
cancellation checks (at least one whole library chunk; the rest of the step's chunks repeat the
same buffers) and its input passed on in place of its estimate. An evaluation already measured
(same machine, patch size, samples, library images, path and memory budget) is not run again: its
peak is reused.

Peak RSS (``VmHWM``) is reset (``/proc/self/clear_refs``) before every new evaluation and every
setting, so each figure is the process's own peak during that work, including what the allocator
kept from earlier work (an overestimate, never an underestimate). One fresh process per library
and size, in a fresh data folder (so the patch indexes of fast drafts are built and measured):

    python benchmarks/bench_memory_sweep.py --out /tmp/memory_sweep.json
    python benchmarks/bench_memory_sweep.py --libraries digits --sizes 128

What it does not bound: memory the allocator keeps between the steps of one run. glibc reuses freed buffers
for the next step's (differently sized) ones and holds on to the rest, so a whole run's RSS creeps up step
after step (``digits`` 128 px ``ls``: 605 MB after its first step, 849 MB after its last, where this sweep
reports 493 MB; BENCHMARKS.md, ninth look). The sweep's figures are each evaluation's own peak; a whole
run's is that plus the allocator's slack.

Prints the heaviest settings, and a check of the method: settings run whole in fresh processes
with ``--whole SETTING …`` (``library:size:machine:preset[:draft][:reference]``; peak RSS from after the
library is loaded) against the sweep's figure; ``--rows`` reuses an earlier sweep's JSON for the checks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ["faces", "photos", "digits"]

CHILD = r"""
import itertools, json, sys, time
from dataclasses import replace
import torch
from core.engines.base import CancelToken
from core.engines.local_score import LocalScoreEngine, LocalScoreRequest
from core.errors import GenerationCancelled
from core.score import MACHINE_KINDS, PRESETS, machine
from core.score.paths import StepShape, choose_path
from core.score.result import DenoiseResult

library, size, polls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024

class Sweep:
    def __init__(self):
        self.inside, self.polls, self.setting_peak = False, 0, 0.0
        self.memo, self.used = {}, set()

    def reset_peak(self):
        self.setting_peak = max(self.setting_peak, status("VmHWM"))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

sweep = Sweep()

class CutShort(CancelToken):
    @property
    def cancelled(self):
        if not sweep.inside:
            return False
        sweep.polls += 1
        return sweep.polls > polls

original = machine._run_machine

def run_machine(x, lib, ab, kind, patch_size, budget, should_cancel, path=None):
    if kind != "is" and path is None:
        shape = StepShape(kind, lib.shape[2], lib.shape[3], lib.shape[1], x.shape[0], lib.shape[0], patch_size)
        path = choose_path(shape, x.device, ab)
    key = (kind, patch_size if kind != "is" else 0, x.shape[0], lib.shape[0], path or "is", budget)
    if key not in sweep.memo:
        sweep.reset_peak()
        sweep.inside, sweep.polls = True, 0
        try:
            original(x, lib, ab, kind, patch_size, budget, should_cancel, path)
        except GenerationCancelled:
            pass
        finally:
            sweep.inside = False
        sweep.memo[key] = status("VmHWM")
    sweep.used.add(key)
    batch, _, height, width = x.shape
    return DenoiseResult(
        x0=x.clone(),
        sources=torch.zeros(batch, height, width, 3, dtype=torch.long),
        entropy=torch.zeros(batch, height, width),
    )

machine._run_machine = run_machine
engine = LocalScoreEngine(device="cpu")
engine.libraries.load(library, size)
baseline = status("VmRSS")
for kind, preset, draft, grid in itertools.product(MACHINE_KINDS, PRESETS, (False, True), ("uniform", "reference")):
    request = LocalScoreRequest(seed=11, count=1, library=library, size=size, machine=kind, preset=preset,
                                approximate=draft, grid=grid)
    row = {"library": library, "size": size, "machine": kind, "preset": preset, "draft": draft, "grid": grid,
           "baseline_mb": baseline}
    try:
        plan = engine.plan(request)
    except Exception as error:  # a refusal the page shows instead of running
        row.update(refused=f"{type(error).__name__}: {error}")
        print(json.dumps(row), flush=True)
        continue
    sweep.used = set()
    sweep.reset_peak()
    sweep.setting_peak = 0.0  # what reset_peak kept was the previous setting's
    start = time.perf_counter()
    engine.generate(request, cancel=CutShort())
    own = max(sweep.setting_peak, status("VmHWM"))
    peak = max([own] + [sweep.memo[key] for key in sweep.used])
    row.update(peak_mb=peak, estimate_mb=plan["cost"].peak_bytes / 2**20, draft_method=plan["draft"],
               evaluations=len(sweep.used), seconds=time.perf_counter() - start)
    print(json.dumps(row), flush=True)
"""

WHOLE = r"""
import json, sys
from core.engines.local_score import LocalScoreEngine, LocalScoreRequest
library, size, kind, preset = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
draft, grid = sys.argv[5] == "1", sys.argv[6]
def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))

engine = LocalScoreEngine(device="cpu")
engine.libraries.load(library, size)
loading = hwm()  # reading the library file has its own peak, before the run: not the run's
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
request = LocalScoreRequest(seed=11, count=1, library=library, size=size, machine=kind, preset=preset,
                            approximate=draft, grid=grid)
engine.generate(request)
print(json.dumps({"peak_mb": hwm(), "loading_peak_mb": loading}))
"""


def sweep(library: str, size: int, polls: int, data_dir: str, timeout: float) -> list[dict]:
    env = {**os.environ, "MOSAIC_DATA_DIR": data_dir, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, library, str(size), str(polls)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )
    if done.returncode != 0:
        raise SystemExit(f"{library} {size} px failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def whole(setting: str, data_dir: str) -> dict:
    parts = setting.split(":")
    library, size, kind, preset = parts[:4]
    draft = "1" if "draft" in parts[4:] else "0"
    grid = "reference" if "reference" in parts[4:] else "uniform"
    env = {**os.environ, "MOSAIC_DATA_DIR": data_dir, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", WHOLE, library, size, kind, preset, draft, grid],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--libraries", nargs="+", default=LIBRARIES)
    parser.add_argument("--sizes", nargs="+", type=int, default=None, help="default: every size the page offers")
    parser.add_argument("--polls", type=int, default=3, help="cancellation checks an evaluation runs through")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per library and size")
    parser.add_argument("--whole", nargs="*", default=[], help="settings to run whole, to check the method")
    parser.add_argument("--rows", type=Path, help="the JSON of an earlier sweep: run only the --whole checks")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_memory_sweep.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from core.engines.local_score import SIZES

    sizes = args.sizes or list(SIZES)
    rows: list[dict] = json.loads(args.rows.read_text())["rows"] if args.rows else []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mosaic-sweep-") as data_dir:
        for library in [] if args.rows else args.libraries:
            for size in sizes:
                t0 = time.perf_counter()
                got = sweep(library, size, args.polls, data_dir, args.timeout)
                rows.extend(got)
                measured = [r for r in got if "peak_mb" in r]
                top = max((r["peak_mb"] for r in measured), default=0.0)
                print(f"{library} {size} px: {len(measured)} settings, {len(got) - len(measured)} refused, "
                      f"peak RSS up to {top:.0f} MB ({time.perf_counter() - t0:.0f} s)", flush=True)
        checks = []
        for setting in args.whole:
            parts = setting.split(":")
            library, size, kind, preset = parts[0], int(parts[1]), parts[2], parts[3]
            draft, grid = "draft" in parts[4:], "reference" if "reference" in parts[4:] else "uniform"
            match = [r for r in rows if (r["library"], r["size"], r["machine"], r["preset"], r["draft"], r["grid"])
                     == (library, size, kind, preset, draft, grid) and "peak_mb" in r]
            full = whole(setting, data_dir)
            swept = match[0]["peak_mb"] if match else None
            checks.append({"setting": setting, "whole_peak_mb": full["peak_mb"], "sweep_peak_mb": swept,
                           "loading_peak_mb": full["loading_peak_mb"]})
            print(f"check {setting}: whole run {full['peak_mb']:.0f} MB (loading the library "
                  f"{full['loading_peak_mb']:.0f} MB), sweep {swept if swept is None else round(swept)} MB", flush=True)
    measured = [r for r in rows if "peak_mb" in r]
    measured.sort(key=lambda r: -r["peak_mb"])
    print(f"\n{len(measured)} settings measured, {len(rows) - len(measured)} refused, "
          f"{time.perf_counter() - started:.0f} s")
    print("| setting | peak RSS | baseline (library loaded) | run adds | estimated | draft |")
    print("|---|---|---|---|---|---|")
    for r in measured[:12]:
        name = f"{r['library']}:{r['size']}:{r['machine']}:{r['preset']}" + (":draft" if r["draft"] else "")
        name += ":reference" if r["grid"] == "reference" else ""
        adds = r["peak_mb"] - r["baseline_mb"]
        print(f"| {name} | {r['peak_mb']:.0f} MB | {r['baseline_mb']:.0f} MB | {adds:.0f} MB "
              f"| {r['estimate_mb']:.0f} MB | {r['draft_method'] or '-'} |")
    over = [r for r in measured if r["peak_mb"] > 2048]
    print(f"settings over 2 GB peak RSS: {len(over)}")
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows, "checks": checks}, indent=1))


if __name__ == "__main__":
    main()
