"""Benchmark: preparing a library for the copy check (the index build), then adding one picture (issue 18).

    python benchmarks/bench_index_build.py --count 5000 --compare-with 0adb03a

Makes ``--count`` 256 px PNG pictures (``bench_import.make_sources``), then for each version of the code (this
checkout, and ``--compare-with REV`` checked out in a temporary git worktree): imports them into a fresh data
folder, and times three ``python -m core analyze QUERY --library bench --json`` runs in child processes, sampling
their RSS every 0.1 s: the first (builds the index), a second (index ready), and one after ``libraries add`` of one
more picture (the index is extended). Both versions run in one go on the same pictures: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import _load_average, make_sources  # noqa: E402


def _run(code: Path, data_dir: Path, args: list[str]) -> dict:
    """``python -m core ARGS`` from checkout ``code`` in a child process: wall time, peak RSS (MB), JSON output."""
    env = dict(os.environ, MOSAIC_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["PYTHONPATH"] = str(code)
    out_file, err_file = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "core", *args], cwd=code, env=env, stdout=out_file, stderr=err_file)
    process = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    out_file.seek(0)
    err_file.seek(0)
    if child.returncode != 0:
        raise RuntimeError(f"{args[:2]} failed: {err_file.read().decode(errors='replace')[-2000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024**2), "output": json.loads(out_file.read())}


def _measure(code: Path, pictures: Path, query: Path, extra: Path, work: Path) -> dict:
    data_dir = work / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    imported = _run(code, data_dir, ["libraries", "add", "bench", str(pictures), "--json"])
    analyze = ["analyze", str(query), "--library", "bench", "--json"]
    first = _run(code, data_dir, analyze)
    again = _run(code, data_dir, analyze)
    _run(code, data_dir, ["libraries", "add", "bench", str(extra), "--json"])
    appended = _run(code, data_dir, analyze)
    return {
        "import_s": imported["seconds"],
        "first_analysis": {k: first[k] for k in ("seconds", "peak_rss_mb")},
        "index_ready": {k: again[k] for k in ("seconds", "peak_rss_mb")},
        "after_adding_one": {k: appended[k] for k in ("seconds", "peak_rss_mb")},
        "verdict_first": first["output"].get("summary"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--compare-with", help="a git revision to measure the same way (a temporary worktree)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    print(f"load average before: {_load_average()}  (cores: {os.cpu_count()})", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-index-") as folder:
        work = Path(folder)
        _, pictures = make_sources(work, args.count)
        images = sorted(pictures.rglob("*.png"))
        query, extra = work / "query.png", work / "extra.png"
        from PIL import Image

        Image.open(images[7]).convert("RGB").resize((512, 512)).save(query)
        Image.open(images[-1]).convert("RGB").rotate(90).save(extra)
        versions = {"this checkout": ROOT}
        if args.compare_with:
            tree = work / "compare"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.compare_with],
                check=True,
                capture_output=True,
            )
            versions[args.compare_with] = tree
        try:
            for name, code in versions.items():
                results[name] = _measure(code, pictures, query, extra, work)
                print(name, json.dumps(results[name]), flush=True)
        finally:
            if args.compare_with:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "compare")],
                    check=False,
                    capture_output=True,
                )
    print(f"load average after: {_load_average()}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"count": args.count, **results}, indent=1))


if __name__ == "__main__":
    main()
