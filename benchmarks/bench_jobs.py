"""Benchmark of the job queue: several users submitting local-score jobs at once.

    python benchmarks/bench_jobs.py [--users 8] [--jobs 3] [--runners local1,local2,ray] [--size 32 --steps 20]

For each runner (one local worker process, two local worker processes, a dispatcher sending jobs to
a local Ray instance of 2 CPUs), in a fresh data folder with a fresh SQLite database:

* warm-up: two jobs per worker process, untimed (imports, library loading, Ray's worker processes);
* alone: one user submits ``--jobs`` jobs; we time until all are done;
* together: ``--users`` users each submit ``--jobs`` jobs at the same moment (threads).

It checks that every job finished exactly once (each job saved exactly its images, no image twice)
and reports the wait of each job (queued → started), p50 and p95, the total time and the throughput
(jobs per minute), and the ratio of the together-throughput to the alone-throughput of the same run.
The load average is printed at the start and the end: timings on a shared machine compare only at
similar load. Figures go into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _submit_all(users: int, jobs: int, size: int, steps: int) -> list[str]:
    from core.engines.local_score import LocalScoreRequest
    from core.jobs import JobQueue
    from core.jobs.requests import encode_request

    ids: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(users)

    def user(u: int) -> None:
        queue = JobQueue()
        barrier.wait()
        for j in range(jobs):
            request = LocalScoreRequest(library="faces", size=size, steps=steps, count=1, seed=1000 * u + j)
            job = queue.submit("generate", encode_request("local-score", request), owner=f"user{u}")
            with lock:
                ids.append(job.id)

    threads = [threading.Thread(target=user, args=(u,)) for u in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids


def _wait_all(ids: list[str], timeout: float = 3600) -> float:
    from core.jobs import FINISHED, JobQueue

    queue = JobQueue()
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if all(queue.get(i).state in FINISHED for i in ids):
            return time.monotonic()
        time.sleep(0.2)
    raise RuntimeError("jobs did not finish in time")


def _check_and_measure(ids: list[str], t0: float, t1: float) -> dict:
    from core.jobs import DONE, JobQueue
    from core.store import Store

    queue = JobQueue()
    store = Store(recover=False)
    jobs = [queue.get(i) for i in ids]
    done = [j for j in jobs if j.state == DONE]
    records = [r for j in jobs for r in (j.result.get("records") or [])]
    seeds = sorted(store.get(r).seed for r in records)
    waits = [(j.started_at - j.created_at).total_seconds() for j in jobs if j.started_at]
    return {
        "jobs": len(jobs),
        "done": len(done),
        "images": len(records),
        "distinct_images": len(set(records)),
        "duplicate_seeds": len(seeds) - len(set(seeds)),
        "wait_p50_s": round(_percentile(waits, 0.5), 2),
        "wait_p95_s": round(_percentile(waits, 0.95), 2),
        "total_s": round(t1 - t0, 2),
        "jobs_per_min": round(60 * len(done) / (t1 - t0), 2),
    }


class Runner:
    """Worker processes (or a Ray dispatcher) for one data folder."""

    def __init__(self, kind: str, env: dict) -> None:
        self.kind = kind
        self.env = env
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        count = {"local1": 1, "local2": 2, "ray": 1}[self.kind]
        env = dict(self.env)
        if self.kind == "ray":
            env["MOSAIC_RAY_ADDRESS"] = "local"  # the dispatcher starts a 2-CPU Ray instance of its own
            env["MOSAIC_RAY_NUM_CPUS"] = "2"
        # two CPU workers share the cores (as the studio's own pool does): one thread each
        threads = ["--threads", str(max(1, (os.cpu_count() or 1) // count))] if self.kind != "ray" else []
        for _ in range(count):
            self.procs.append(
                subprocess.Popen([sys.executable, "-m", "core", "worker", *threads], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _warm(env: dict, size: int, steps: int) -> None:
    """Build the faces library and compile the kernel once, outside the timings."""
    subprocess.run([sys.executable, "-m", "core", "generate", "--library", "faces", "--size", str(size),
                    "--steps", str(steps), "--count", "1"], cwd=ROOT, env=env, check=True, capture_output=True)


def run(kind: str, users: int, jobs: int, size: int, steps: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-jobs-{kind}-"))
    env = dict(os.environ, MOSAIC_DATA_DIR=str(folder), PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    env.pop("MOSAIC_DATABASE_URL", None)
    os.environ.update({"MOSAIC_DATA_DIR": str(folder)})
    os.environ.pop("MOSAIC_DATABASE_URL", None)
    _warm(env, size, steps)
    runner = Runner(kind, env)
    runner.start()
    try:
        # warm every worker (imports, the library in memory, Ray's worker processes) outside the timings
        warm = _submit_all(len(runner.procs) * 2, 1, size, steps)
        _wait_all(warm)
        t0 = time.monotonic()
        alone = _submit_all(1, jobs, size, steps)
        alone_res = _check_and_measure(alone, t0, _wait_all(alone))
        t0 = time.monotonic()
        together = _submit_all(users, jobs, size, steps)
        together_res = _check_and_measure(together, t0, _wait_all(together))
    finally:
        runner.stop()
    together_res["throughput_vs_alone"] = round(together_res["jobs_per_min"] / alone_res["jobs_per_min"], 2)
    return {"runner": kind, "alone": alone_res, "together": together_res}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runners", default="local1,local2,ray")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    print(f"load average at start: {_load_average()}  (cores: {os.cpu_count()})")
    results = []
    for kind in args.runners.split(","):
        result = run(kind, args.users, args.jobs, args.size, args.steps)
        results.append(result)
        a, t = result["alone"], result["together"]
        print(
            f"{kind:<7} alone: {a['done']}/{a['jobs']} in {a['total_s']} s ({a['jobs_per_min']}/min) | "
            f"{args.users} users: {t['done']}/{t['jobs']} done, {t['images']} images "
            f"({t['distinct_images']} distinct, {t['duplicate_seeds']} duplicate seeds), wait p50 {t['wait_p50_s']} s "
            f"p95 {t['wait_p95_s']} s, {t['total_s']} s, {t['jobs_per_min']}/min (x{t['throughput_vs_alone']} alone)"
        )
    print(f"load average at end: {_load_average()}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
