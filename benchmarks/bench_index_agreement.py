"""Benchmark: how far the approximate search moves the analysis from an exact one (issue 18: "per-pixel sources
agreeing ≥ 95 % with the exact index on a 5,000-image subset and planted copies still flagged").

    MOSAIC_DATA_DIR=/tmp/p5k/data2 python benchmarks/bench_index_agreement.py --library bench \
        --exact-cache /tmp/p5k/exact-maps.npz --out benchmarks/results/index_agreement_5000.json [--set nprobe=6]

Two analyzers on one library: ``exact`` (its own index folder, every searcher a brute-force search,
``force_backend="exact"``: the reference) and ``index`` (the index as built: FAISS IVF lists, compressed above
50,000 vectors and re-ranked exactly). ``--exact-cache``: the exact analyses' maps are kept in this file and
reused (they take minutes and do not depend on the approximate search). Five 512 px queries
made from the library's pictures: a planted near copy (cropped, enlarged), a collage of four pictures, six
pictures shrunk onto a plain ground, a detail blown up four times, and noise from outside. For each, the share of
pixels whose source picture agrees with the exact analysis (both "nothing borrowed" counts as agreeing), the
share whose borrowed / not-borrowed call agrees, the near-copy flag and the time of a second analysis.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.analyzer import Analyzer  # noqa: E402
from core.analyzer.settings import AnalyzerSettings  # noqa: E402
from core.libraries import LibraryManager  # noqa: E402


def _queries(manager: LibraryManager, library: str) -> dict[str, Image.Image]:
    count = manager.get(library).count
    rng = np.random.default_rng(11)
    pick = [int(i) for i in rng.choice(count, 12, replace=False)]

    def picture(i: int) -> Image.Image:
        return manager.item_image(library, i).convert("RGB")

    source = picture(pick[0])
    w, h = source.size
    out = {"planted near copy": source.crop((10, 10, w - 20, h - 12)).resize((512, 512), Image.BICUBIC)}
    collage = Image.new("RGB", (512, 512))
    for k, i in enumerate(pick[1:5]):
        collage.paste(picture(i).resize((256, 256)), ((k % 2) * 256, (k // 2) * 256))
    out["collage of four"] = collage
    shrunk = Image.new("RGB", (512, 512), (90, 120, 60))
    for k, i in enumerate(pick[5:11]):
        shrunk.paste(picture(i).resize((150, 150)), (20 + (k % 3) * 165, 60 + (k // 3) * 220))
    out["six shrunk"] = shrunk
    detail = picture(pick[11])
    side = detail.size[0] // 4
    out["detail blown up 4x"] = detail.crop((side, side, 2 * side, 2 * side)).resize((512, 512), Image.BICUBIC)
    noise = rng.normal(128, 40, size=(64, 64, 3)).clip(0, 255).astype(np.uint8)
    out["outside"] = Image.fromarray(noise).resize((512, 512), Image.BICUBIC)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", default="bench")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--exact-cache", type=Path, help="keep / reuse the exact analyses' maps in this .npz")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=NUMBER",
        help="an analyzer setting of the index analysis only (e.g. nprobe=6); the reference keeps the defaults",
    )
    args = parser.parse_args()
    manager = LibraryManager()
    root = Path(os.environ["MOSAIC_DATA_DIR"]) / "indexes"
    settings = AnalyzerSettings()
    pairs = (a.split("=", 1) for a in args.set)
    changed = {name: float(value) if "." in value else int(value) for name, value in pairs}
    analyzers = {
        "exact": Analyzer(manager, settings=settings, index_root=root / "exact", force_backend="exact"),
        "index": Analyzer(manager, settings=dataclasses.replace(settings, **changed)),
    }
    results: dict = {
        "library": args.library,
        "pictures": manager.get(args.library).count,
        "settings": changed,
        "load_before": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "queries": {},
    }
    cached: dict = {}
    if args.exact_cache and args.exact_cache.is_file():
        with np.load(args.exact_cache, allow_pickle=False) as data:
            cached = {key: data[key] for key in data.files}
    for name, analyzer in analyzers.items():
        started = time.perf_counter()
        analyzer.index(args.library)
        results[f"{name}_index_ready_s"] = round(time.perf_counter() - started, 1)
    for query_name, image in _queries(manager, args.library).items():
        maps, row = {}, {}
        for name, analyzer in analyzers.items():
            if name == "exact" and f"{query_name}/map" in cached:
                maps[name] = cached[f"{query_name}/map"]
                row[name] = json.loads(str(cached[f"{query_name}/row"]))
                continue
            if name != "exact":  # the exact one runs once: its time is not the point
                analyzer.analyze(image, args.library)
            started = time.perf_counter()
            result = analyzer.analyze(image, args.library)
            maps[name] = result.source_map
            row[name] = {
                "seconds": round(time.perf_counter() - started, 2),
                "near_copy": result.near_copy.is_copy,
                "risk": result.copy_risk,
                "borrowed": round(result.borrowed_fraction, 3),
            }
            if name == "exact":
                cached[f"{query_name}/map"] = result.source_map
                cached[f"{query_name}/row"] = np.array(json.dumps(row[name]))
                if args.exact_cache:
                    np.savez(args.exact_cache, **cached)
        for name in ("index",):
            row[name]["same_source"] = round(float((maps[name] == maps["exact"]).mean()), 4)
            row[name]["same_borrowed"] = round(float(((maps[name] >= 0) == (maps["exact"] >= 0)).mean()), 4)
        results["queries"][query_name] = row
        print(query_name, json.dumps(row), flush=True)
    for name in ("index",):
        results[f"{name}_mean_same_source"] = round(
            float(np.mean([q[name]["same_source"] for q in results["queries"].values()])), 4
        )
    results["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(json.dumps({k: v for k, v in results.items() if k != "queries"}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
