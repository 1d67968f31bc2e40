"""Benchmark: a library of 100,000 pictures on this machine (issue 18, "Done when"): import, index build
killed half way and resumed, disk, and the analysis of a 512 px image in process and through the CLI.

    python benchmarks/bench_corpus.py --count 100000 --work /tmp/corpus --out benchmarks/results/corpus_100000.json

Steps (each skipped when ``--work`` already holds its result, so a long run can be continued):

1. ``--count`` 256 px JPEG pictures cut from the photos scikit-image ships (``bench_import._pictures``'s crops,
   two processes), in one folder per photo.
2. ``python -m core libraries add bench FOLDER --json`` in a child process: time and peak RSS.
3. The search data: the library's picture cache, then the index build in a child process, killed with SIGKILL
   once half its shards are sealed, then built again: the second build must keep every sealed shard (same
   inode) and its time is what was left. Peak RSS is the summed RSS of the child and its descendants, every
   0.1 s.
4. Analyses of a 512 px planted copy (a library picture cropped, enlarged and brightened), a collage of four
   library pictures and a picture from outside: ``python -m core analyze`` with no worker running (the command
   runs the job itself: a cold process, index ready), ``python -m core analyze`` with a ``python -m core worker``
   running (as in the studio: the worker keeps the opened index between jobs; after one warm-up job), and in
   one process after a first analysis (the analyzer's own timings).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import _load_average, _photos, varied_crop  # noqa: E402
from bench_index_shards import _tree_rss  # noqa: E402

_CHUNK = 2_000

_CACHE = """
import time
from core.analyzer.settings import AnalyzerSettings
from core.libraries import LibraryManager
manager = LibraryManager()
started = time.perf_counter()
manager.pixels("bench", AnalyzerSettings().work_size, manager.get("bench").channels)
print("CACHE", round(time.perf_counter() - started, 1), flush=True)
"""

_BUILD = """
import time
from core.analyzer import Analyzer
from core.libraries import LibraryManager
started = time.perf_counter()
built, _ = Analyzer(LibraryManager()).index("bench")
print("BUILT", built.count, round(time.perf_counter() - started, 1), flush=True)
"""

_ANALYSE = """
import json, sys, time
from PIL import Image
from core.analyzer import Analyzer
from core.libraries import LibraryManager
analyzer = Analyzer(LibraryManager())
out = {}
for path in sys.argv[1:]:
    image = Image.open(path)
    image.load()
    analyzer.analyze(image, "bench")  # a first one: files into the page cache, code warmed up
    runs = []
    for _ in range(2):
        started = time.perf_counter()
        result = analyzer.analyze(image, "bench")
        runs.append(round(time.perf_counter() - started, 2))
    out[path] = {"seconds": runs, "timings": {k: round(v, 2) for k, v in result.timings.items()},
                 "near_copy": result.near_copy.is_copy, "verdict": result.copy_risk,
                 "borrowed": round(result.borrowed_fraction, 3), "sources": len(result.sources)}
print("ANALYSED " + json.dumps(out), flush=True)
"""


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ, MOSAIC_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["PYTHONPATH"] = str(ROOT)
    env.pop("MOSAIC_RAY_ADDRESS", None)
    return env


def _child(data_dir: Path, args: list[str], kill_when=None) -> dict:  # noqa: ANN001
    """Run ``python ARGS`` in ``ROOT``: wall time, peak RSS of its process tree, its output lines."""
    started = time.perf_counter()
    out_path = data_dir.parent / "child.out"
    with open(out_path, "w") as out, open(data_dir.parent / "child.err", "w") as err:
        child = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=_env(data_dir), stdout=out, stderr=err, start_new_session=True
        )
        process = psutil.Process(child.pid)
        peak = 0
        while child.poll() is None:
            peak = max(peak, _tree_rss(process))
            if kill_when is not None and kill_when():
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                return {"killed_after_s": round(time.perf_counter() - started, 1), "peak_rss_mb": round(peak / 2**20)}
            time.sleep(0.1)
    seconds = time.perf_counter() - started
    text = out_path.read_text()
    if child.returncode != 0:
        errors = (data_dir.parent / "child.err").read_text()[-3000:]
        raise RuntimeError(f"{args[:3]} failed ({child.returncode}): {errors}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak / 2**20), "output": text}


def _make_chunk(job: tuple[Path, int, int]) -> int:
    """Pictures ``first`` .. ``first + count - 1`` (seeded by ``first``) as JPEG files."""
    folder, first, count = job
    rng = np.random.default_rng(first)
    photos = _photos()
    for index in range(first, first + count):
        name, picture = varied_crop(photos, rng)
        target = folder / name / f"{index:07d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        picture.save(target, format="JPEG", quality=92)
    return count


def make_pictures(folder: Path, count: int) -> float:
    done = folder / "done.json"
    if done.is_file() and json.loads(done.read_text())["count"] == count:
        return json.loads(done.read_text())["seconds"]
    started = time.perf_counter()
    jobs = [(folder, first, min(_CHUNK, count - first)) for first in range(0, count, _CHUNK)]
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
        made = sum(pool.imap_unordered(_make_chunk, jobs))
    seconds = round(time.perf_counter() - started, 1)
    done.write_text(json.dumps({"count": made, "seconds": seconds}))
    return seconds


def _disk_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def _sealed(indexes: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in indexes.glob("*/shards/*") if not p.name.startswith(".")}


def _queries(work: Path, pictures: Path) -> list[Path]:
    from PIL import Image

    files = sorted(pictures.rglob("*.jpg"))
    rng = np.random.default_rng(7)
    out = []
    source = Image.open(files[int(rng.integers(len(files)))]).convert("RGB")
    copy = source.crop((20, 12, 236, 240)).resize((512, 512), Image.BICUBIC)
    copy = Image.fromarray(np.clip(np.asarray(copy, dtype=np.float32) * 1.08 + 6, 0, 255).astype(np.uint8))
    out.append(work / "query-planted-copy.png")
    copy.save(out[-1])
    collage = Image.new("RGB", (512, 512))
    for k in range(4):
        piece = Image.open(files[int(rng.integers(len(files)))]).convert("RGB").resize((256, 256))
        collage.paste(piece, ((k % 2) * 256, (k // 2) * 256))
    out.append(work / "query-collage.png")
    collage.save(out[-1])
    noise = rng.normal(128, 40, size=(64, 64, 3)).clip(0, 255).astype(np.uint8)
    outside = Image.fromarray(noise).resize((512, 512), Image.BICUBIC)
    out.append(work / "query-outside.png")
    outside.save(out[-1])
    return out


#: seconds between the worker's start and the first command: its warm-up (reading the index into the file
#: cache, 11.5 GB in 27.5 s from a cold cache at 100,000 pictures) must not run beside the measured commands
_WORKER_SETTLE_S = 45


def _with_worker(data_dir: Path, queries: list[Path]) -> dict:
    """``python -m core analyze`` timings while a worker runs the jobs (one warm-up job first)."""
    log = data_dir.parent / "worker.err"
    with open(log, "w") as err:
        worker = subprocess.Popen(
            [sys.executable, "-m", "core", "worker"], cwd=ROOT, env=_env(data_dir), stdout=subprocess.DEVNULL,
            stderr=err, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "is running jobs" not in log.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        time.sleep(_WORKER_SETTLE_S)  # its first heartbeat is in the database, its warm-up has read the index
        command = ["-m", "core", "analyze", "--library", "bench", "--json"]
        _child(data_dir, [*command[:3], str(queries[0]), *command[3:]])  # the worker opens the index
        out: dict = {}
        for query in queries:
            runs = []
            for _ in range(2):
                ran = _child(data_dir, [*command[:3], str(query), *command[3:]])
                verdict = json.loads(ran.pop("output"))
                ran["near_copy"] = verdict.get("near_copy", {}).get("is_copy") if isinstance(verdict, dict) else None
                runs.append(ran)
            out[query.name] = runs
        return out
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--work", type=Path, required=True, help="a folder for the pictures and the data folder")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--skip-build", action="store_true", help="only the analyses (the index is ready)")
    args = parser.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    data_dir.mkdir(exist_ok=True)
    results_file = work / "results.json"
    results: dict = json.loads(results_file.read_text()) if results_file.is_file() else {}
    results.update(count=args.count, cores=os.cpu_count(), load_before=_load_average())

    def save() -> None:
        results_file.write_text(json.dumps(results, indent=1))
        print(json.dumps(results, indent=1), flush=True)

    pictures = work / "pictures"
    results["make_pictures_s"] = make_pictures(pictures, args.count)
    results["pictures_disk_mb"] = _disk_mb(pictures)
    if "import" not in results:
        imported = _child(data_dir, ["-m", "core", "libraries", "add", "bench", str(pictures), "--json"])
        report = json.loads(imported.pop("output"))
        imported["added"] = report[0]["added"] if isinstance(report, list) else report.get("added")
        imported["ms_per_picture"] = round(imported["seconds"] * 1000 / args.count, 2)
        results["import"] = imported
        results["library_disk_mb"] = _disk_mb(data_dir / "libraries")
        save()
    if not args.skip_build and "resumed" not in results:
        cache = _child(data_dir, ["-c", _CACHE])
        results["picture_cache"] = {"seconds": cache["seconds"], "peak_rss_mb": cache["peak_rss_mb"]}
        indexes = data_dir / "indexes" / "bench"
        shards = -(-args.count // 2048)
        killed = _child(data_dir, ["-c", _BUILD], kill_when=lambda: len(_sealed(indexes)) >= shards // 2)
        before = _sealed(indexes)
        killed["sealed"] = len(before)
        results["killed half way"] = killed
        save()
        resumed = _child(data_dir, ["-c", _BUILD])
        after = _sealed(indexes)
        resumed.pop("output")
        resumed["kept_sealed_shards"] = sum(1 for name, ino in before.items() if after.get(name) == ino)
        resumed["shards"] = len(after)
        results["resumed"] = resumed
        results["index_disk_mb"] = _disk_mb(indexes)
        save()
    queries = _queries(work, pictures)
    results["cli"] = {}
    for query in queries:
        runs = []
        for _ in range(2):
            ran = _child(data_dir, ["-m", "core", "analyze", str(query), "--library", "bench", "--json"])
            verdict = json.loads(ran.pop("output"))
            ran["near_copy"] = verdict.get("near_copy", {}).get("is_copy") if isinstance(verdict, dict) else None
            runs.append(ran)
        results["cli"][query.name] = runs
    results["cli_with_worker"] = _with_worker(data_dir, queries)
    save()
    analysed = _child(data_dir, ["-c", _ANALYSE, *map(str, queries)])
    line = [x for x in analysed["output"].splitlines() if x.startswith("ANALYSED ")][0]
    results["in_process"] = {Path(k).name: v for k, v in json.loads(line.removeprefix("ANALYSED ")).items()}
    results["in_process_peak_rss_mb"] = analysed["peak_rss_mb"]
    results["load_after"] = _load_average()
    save()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
