"""Benchmark: library imports at scale (issue 18): rate, peak memory and resume after a kill.

Makes a source of ``--count`` 256 px PNG pictures (seeded random crops of the scikit-image photos, with flips
and colour shifts, labelled by photo), as a parquet file written in row groups (never whole in memory) and
as a folder, then imports each with ``python -m core libraries add`` in a child process and samples the
child's RSS every 0.1 s (psutil). The ``--kill`` run SIGKILLs the import of the parquet file half way, runs
the same command again and reports how many pictures it took over from the stopped run (not read again)
and its time. Prints a Markdown table; JSON with ``--out``::

    python benchmarks/bench_import.py --count 5000
    python benchmarks/bench_import.py --count 20000 --kill --out benchmarks/results/import.json

Peak memory should not grow with ``--count`` (imports stream); compare two counts in one run with
``--count 1000 5000``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "gravel",
    "grass",
    "brick",
    "camera",
    "coins",
    "moon",
    "hubble_deep_field",
    "retina",
)
SIDE = 256


def _load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _photos() -> list[tuple[str, np.ndarray]]:
    import skimage.data

    photos = []
    for name in PHOTOS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        photos.append((name, image[..., :3].astype(np.uint8)))
    return photos


def varied_crop(photos: list[tuple[str, np.ndarray]], rng: np.random.Generator):
    """(label, 256 px picture) cut from one of ``photos``: a random square, maybe mirrored, recoloured."""
    from PIL import Image

    name, image = photos[int(rng.integers(len(photos)))]
    h, w = image.shape[:2]
    side = int(rng.integers(96, min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = image[y : y + side, x : x + side].astype(np.float32)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = np.clip(crop * rng.uniform(0.8, 1.2, size=3) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
    return name, Image.fromarray(crop).resize((SIDE, SIDE), Image.BILINEAR)


def _pictures(count: int, seed: int = 0):
    """(label, PNG bytes) of ``count`` varied 256 px crops."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    for _ in range(count):
        name, picture = varied_crop(photos, rng)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        yield name, buffer.getvalue()


def make_sources(folder: Path, count: int) -> tuple[Path, Path]:
    """A parquet file (row groups of 500) and a folder (one sub-folder per photo) of the same pictures."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = folder / f"pictures-{count}.parquet"
    pictures = folder / f"pictures-{count}"
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), ("label", pa.string())])
    with pq.ParquetWriter(parquet, schema) as writer:
        batch: list[tuple[str, bytes]] = []
        for index, (label, data) in enumerate(_pictures(count)):
            batch.append((label, data))
            target = pictures / label / f"{index:07d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if len(batch) == 500 or index == count - 1:
                writer.write_table(
                    pa.table(
                        {"image": [{"bytes": d, "path": None} for _, d in batch], "label": [lb for lb, _ in batch]},
                        schema=schema,
                    )
                )
                batch = []
    return parquet, pictures


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ, MOSAIC_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_import(data_dir: Path, name: str, source: Path, extra: list[str], kill_at: float | None = None) -> dict:
    """One ``libraries add`` in a child process: wall time, peak RSS (MB), its JSON output (None if killed)."""
    command = [sys.executable, "-m", "core", "libraries", "add", name, str(source), "--json", *extra]
    started = time.perf_counter()
    # output to files, not pipes: a child writing more than a pipe holds would wait for this loop forever
    out_file, err_file = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    child = subprocess.Popen(command, cwd=ROOT, env=_env(data_dir), stdout=out_file, stderr=err_file)
    process = psutil.Process(child.pid)
    peak = 0
    killed = False
    journal = None
    while child.poll() is None:
        try:
            peak = max(peak, process.memory_info().rss)
        except psutil.Error:
            pass
        if kill_at is not None and not killed:
            found = list((data_dir / "libraries").glob(f".resumable-{name}-*/journal.jsonl"))
            if found:
                journal = found[0]
                lines = journal.read_bytes().count(b"\n")
                if lines >= kill_at:
                    child.send_signal(signal.SIGKILL)
                    killed = True
        time.sleep(0.1)
    child.wait()
    seconds = time.perf_counter() - started
    out_file.seek(0)
    err_file.seek(0)
    out, err = out_file.read(), err_file.read()
    result = {"seconds": seconds, "peak_rss_mb": peak / 1024**2, "killed": killed}
    if not killed:
        if child.returncode != 0:
            raise RuntimeError(f"import failed: {err.decode(errors='replace')[-2000:]}")
        result["report"] = json.loads(out)[0]
    elif journal is not None:
        result["journal_lines"] = journal.read_bytes().count(b"\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, nargs="+", default=[5000])
    parser.add_argument("--kill", action="store_true", help="also kill the parquet import half way and resume it")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    print(f"load average at start: {_load_average()}, cores: {os.cpu_count()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        base = Path(tmp)
        for count in args.count:
            made = time.perf_counter()
            parquet, folder = make_sources(base, count)
            print(f"{count} pictures made in {time.perf_counter() - made:.0f} s", file=sys.stderr)
            for kind, source, extra in (("parquet", parquet, ["--label-column", "label"]), ("folder", folder, [])):
                result = run_import(base / f"data-{kind}-{count}", "bench", source, extra)
                assert result["report"]["added"] == count, result["report"]
                rows.append({"count": count, "source": kind, **result, "rate": count / result["seconds"]})
                print(json.dumps(rows[-1], default=str)[:300], file=sys.stderr)
            if args.kill:
                data_dir = base / f"data-kill-{count}"
                first = run_import(data_dir, "bench", parquet, ["--label-column", "label"], kill_at=count / 2)
                second = run_import(data_dir, "bench", parquet, ["--label-column", "label"])
                notices = " ".join(second["report"]["notices"])
                rows.append(
                    {
                        "count": count,
                        "source": "parquet, killed half way then run again",
                        "seconds": first["seconds"] + second["seconds"],
                        "peak_rss_mb": max(first["peak_rss_mb"], second["peak_rss_mb"]),
                        "rate": count / (first["seconds"] + second["seconds"]),
                        "kept_at_kill": first.get("journal_lines"),
                        "second_run_seconds": second["seconds"],
                        "went_on": "Went on" in notices,
                        "added": second["report"]["added"],
                    }
                )
                print(json.dumps(rows[-1], default=str)[:300], file=sys.stderr)
    print("| pictures | source | wall time | pictures/s | peak RSS | note |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        note = ""
        if "kept_at_kill" in row:
            note = (
                f"killed after {row['kept_at_kill']} noted; the second run took them over "
                f"({'yes' if row['went_on'] else 'NO'}), ran {row['second_run_seconds']:.0f} s, added {row['added']}"
            )
        print(
            f"| {row['count']:,} | {row['source']} | {row['seconds']:.0f} s | {row['rate']:.0f} | "
            f"{row['peak_rss_mb']:.0f} MB | {note} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
