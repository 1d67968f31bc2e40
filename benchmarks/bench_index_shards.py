"""Benchmark: the sharded index build in this process and on a local Ray instance with 1 and 2 workers,
a build killed half way and resumed, and the per-picture costs extrapolated to 1 M and 10 M pictures
(issue 18, items 2 and 3).

    python benchmarks/bench_index_shards.py --count 3000 --shard-images 250

Makes ``--count`` 256 px pictures (``bench_import.make_sources``) and imports them once. Each build runs in a
child process from an empty index folder (the library's picture cache is made first, so every build starts
from the same cache): its wall time and the peak of the summed RSS of the child and all its descendants
(Ray's raylet and workers included), sampled every 0.1 s. The resume run kills a local build with SIGKILL
once half its shards are sealed, then times the build that goes on. Everything runs in one go: compare
ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import _load_average, make_sources  # noqa: E402

_BUILD = """
import sys, time
from core.analyzer import Analyzer, index
from core.libraries import LibraryManager
index.SHARD_IMAGES = int(sys.argv[1])
started = time.perf_counter()
built, _ = Analyzer(LibraryManager()).index("bench")
print("BUILT", built.count, round(time.perf_counter() - started, 2), flush=True)
"""

_CACHE = """
from core.analyzer.settings import AnalyzerSettings
from core.libraries import LibraryManager
manager = LibraryManager()
manager.pixels("bench", AnalyzerSettings().work_size, manager.get("bench").channels)
"""


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def _env(data_dir: Path, ray: int | None) -> dict[str, str]:
    env = dict(os.environ, MOSAIC_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    env.pop("MOSAIC_RAY_ADDRESS", None)
    if ray:
        env["MOSAIC_RAY_ADDRESS"] = "local"
        env["MOSAIC_RAY_NUM_CPUS"] = str(ray)
    return env


def _build(data_dir: Path, shard_images: int, ray: int | None = None, kill_at: int | None = None) -> dict:
    """One build from an empty index folder (``kill_at``: SIGKILL once this many shards are sealed)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", _BUILD, str(shard_images)],
        cwd=ROOT,
        env=_env(data_dir, ray),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    process = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss(process))
        if kill_at is not None and len(_sealed(data_dir)) >= kill_at:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return {"killed_after_s": round(time.perf_counter() - started, 1), "sealed": len(_sealed(data_dir))}
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"build failed with exit status {child.returncode}")
    built = [line for line in child.stdout.read().splitlines() if line.startswith("BUILT")][0].split()
    return {"seconds": round(seconds, 1), "build_s": float(built[2]), "peak_rss_mb": round(peak / 1024**2)}


def _indexes(data_dir: Path) -> Path:
    return data_dir / "indexes" / "bench"


def _sealed(data_dir: Path) -> list[Path]:
    return [p for p in _indexes(data_dir).glob("*/shards/*") if not p.name.startswith(".")]


def _disk_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1024**2, 1)


def _fresh(data_dir: Path) -> None:
    import shutil

    shutil.rmtree(_indexes(data_dir), ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--shard-images", type=int, default=250)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    print(f"load average before: {_load_average()}  (cores: {os.cpu_count()})", flush=True)
    results: dict = {"count": args.count, "shard_images": args.shard_images}
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as folder:
        work = Path(folder)
        _, pictures = make_sources(work, args.count)
        data_dir = work / "data"
        subprocess.run(
            [sys.executable, "-m", "core", "libraries", "add", "bench", str(pictures), "--json"],
            cwd=ROOT,
            env=_env(data_dir, None),
            check=True,
            capture_output=True,
        )
        subprocess.run([sys.executable, "-c", _CACHE], cwd=ROOT, env=_env(data_dir, None), check=True)
        for name, ray in (("local", None), ("ray, 1 worker", 1), ("ray, 2 workers", 2)):
            _fresh(data_dir)
            results[name] = _build(data_dir, args.shard_images, ray)
            print(name, json.dumps(results[name]), flush=True)
        results["index_disk_mb"] = _disk_mb(_indexes(data_dir))
        results["library_disk_mb"] = _disk_mb(data_dir / "libraries")
        shards = -(-args.count // args.shard_images)
        _fresh(data_dir)
        killed = _build(data_dir, args.shard_images, kill_at=shards // 2)
        resumed = _build(data_dir, args.shard_images)
        results["killed half way"] = killed
        results["resumed"] = resumed
        print("killed", json.dumps(killed), "resumed", json.dumps(resumed), flush=True)
    local, one, two = results["local"], results["ray, 1 worker"], results["ray, 2 workers"]
    per_image_core_s = one["build_s"] / args.count  # one worker: one core
    results["extrapolation"] = {
        "seconds_per_picture_on_one_core": round(per_image_core_s, 4),
        "ray_speedup_2_vs_1_workers": round(one["build_s"] / two["build_s"], 2),
        "index_disk_kb_per_picture": round(results["index_disk_mb"] * 1024 / args.count, 1),
        "core_hours_1M": round(per_image_core_s * 1e6 / 3600, 1),
        "core_hours_10M": round(per_image_core_s * 1e7 / 3600, 1),
        "cores_for_1M_in_one_hour": int(-(-per_image_core_s * 1e6 // 3600)),
        "index_disk_gb_1M": round(results["index_disk_mb"] / args.count * 1e6 / 1024, 1),
        "index_disk_gb_10M": round(results["index_disk_mb"] / args.count * 1e7 / 1024, 1),
        "local_build_s": local["build_s"],
    }
    print(json.dumps(results["extrapolation"], indent=1))
    print(f"load average after: {_load_average()}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
