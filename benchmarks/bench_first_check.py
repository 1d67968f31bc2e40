"""Benchmark: the first originality check after a worker starts, with and without its warm-up
(``core.analyzer.warmup``), the operating system's file cache emptied before each start.

    sudo python benchmarks/bench_first_check.py --data /tmp/corpus/data --library bench \\
        --image /tmp/corpus/query-collage.png --wait 40 --out benchmarks/results/first_check.json

For each mode (``--no-warm-up`` and the default warm-up), ``--repeats`` times, alternating: empty the file
cache (``sync; echo 3 > /proc/sys/vm/drop_caches``: needs root), start ``python -m core worker``, wait
``--wait`` seconds (a person opening the studio, choosing a picture and a library), then time
``python -m core analyze IMAGE --library LIBRARY --json`` (the worker runs it) twice: the first check and
the one after it. The worker's log line says how long its warm-up took.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def drop_file_cache() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed_check(env: dict[str, str], image: str, library: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "core", "analyze", image, "--library", library, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the check failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def one_run(env: dict[str, str], warm: bool, args: argparse.Namespace, log: Path) -> dict:
    drop_file_cache()
    command = [sys.executable, "-m", "core", "--verbose", "worker"] + ([] if warm else ["--no-warm-up"])
    with open(log, "w") as out:
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        time.sleep(args.wait)
        first = timed_check(env, args.image, args.library)
        second = timed_check(env, args.image, args.library)
    finally:
        worker.terminate()
        worker.wait(60)
    text = log.read_text()
    found = re.search(r"warm-up: read ([\d.]+) GB of .* in ([\d.]+) s", text)
    return {
        "warm_up": warm,
        "first_check_s": round(first, 2),
        "second_check_s": round(second, 2),
        "warm_up_read_gb": float(found.group(1)) if found else None,
        "warm_up_s": float(found.group(2)) if found else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="data folder holding the prepared library")
    parser.add_argument("--library", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--wait", type=float, default=40.0, help="seconds between the worker's start and the check")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("emptying the file cache needs root (run with sudo)")
    env = dict(os.environ, MOSAIC_DATA_DIR=str(Path(args.data).resolve()), MOSAIC_WORKERS="0")
    env.pop("MOSAIC_RAY_ADDRESS", None)
    runs = []
    for repeat in range(args.repeats):
        for warm in (False, True):
            run = one_run(env, warm, args, Path(f"/tmp/bench-first-check-worker-{int(warm)}.log"))
            run["repeat"] = repeat
            runs.append(run)
            print(json.dumps(run), flush=True)
    result = {
        "command": " ".join(sys.argv),
        "load_average": os.getloadavg(),
        "wait_s": args.wait,
        "runs": runs,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
