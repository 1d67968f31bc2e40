"""Creativity Lab benchmark: a trained UNet versus the IS / LS / ELS / bbELS score machines (Kamb & Ganguli 2025).

On the Fashion-MNIST subset (3,615 images, resized to 32×32, class-conditional):

1. ``train`` – train a convolution-only UNet with :mod:`core.lab.train` (resumable; run it in the background);
2. ``calibrate`` – a machine's patch size per step along the UNet's own DDIM trajectories
   (:func:`core.lab.calibrate.calibrate_scales`; ``--kind bbels`` → ``scales.json``, ``--kind ls`` →
   ``scales_ls.json``, ``--kind els`` → ``scales_els.json``);
3. ``compare`` – the UNet against the IS, LS, ELS and bbELS machines from the same noise and label
   (:func:`core.lab.compare.run_comparison`); every machine uses its own calibrated schedule when the
   folder has one, else the bbELS one. The machines run **exactly** unless ``--top-k K`` asks for the
   approximate mode; seed ranges can run one after the other (or in parallel processes);
4. ``report`` – merges the seed ranges (and machine sets run apart, ``--machines``) into one table
   (``bench_table_exact.md``, ``bench_summary_exact.json``; ``_topK`` for approximate runs).

Example (what BENCHMARKS.md reports; one torch thread per process, ``--threads``)::

    nohup python benchmarks/bench_lab.py train --out /tmp/lab_fashion --minutes 48 > /tmp/lab_train.log 2>&1 &
    python benchmarks/bench_lab.py calibrate --out /tmp/lab_fashion --samples 8 --top-k 32
    python benchmarks/bench_lab.py calibrate --out /tmp/lab_fashion --kind ls --samples 8
    python benchmarks/bench_lab.py calibrate --out /tmp/lab_fashion --kind els --samples 8 --top-k 32
    for first in 0 10 20 30 40; do
        python benchmarks/bench_lab.py compare --out /tmp/lab_fashion --first $first --count 10 --machines is ls bbels
    done
    for first in 0 10 20 30 40; do  # circular ELS: ~10× slower than bbELS, run apart
        python benchmarks/bench_lab.py compare --out /tmp/lab_fashion --first $first --count 10 --machines els
    done
    python benchmarks/bench_lab.py report --out /tmp/lab_fashion
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.lab.train import TrainConfig, TrainProgress, train  # noqa: E402
from core.libraries.tensors import square_array  # noqa: E402

logger = logging.getLogger("bench_lab")

DATA = Path("/work/shared/data/fashion_mnist_3615.npz")
#: The training curve's probe: seeds apart from the comparison's (0–99) and the calibration's (10,000…), and a
#: fixed bbELS schedule (calibrated on an earlier model), so points of one run and of its resumptions compare.
PROBE_FIRST_SEED = 20_000
PROBE_SIZES = [45, 33, 33, 17, 15, 15, 13, 11, 7, 5, 5, 5, 5, 5, 5, 3, 3, 3, 3, 1]
LABEL_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def load_fashion(path: Path, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 1, size, size)`` in ``[-1, 1]`` (bicubic resize, as the libraries do) and ``(N,)`` labels."""
    with np.load(path, allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    arrays = np.stack([square_array(Image.fromarray(img), size, 1) for img in images])
    return torch.from_numpy(arrays).float().div(127.5).sub(1.0), torch.from_numpy(labels.astype(np.int64))


def cmd_train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    images, labels = load_fashion(Path(args.data), args.size)
    hparams = {"block_channels": args.channels, "layers_per_block": args.layers, "norm_groups": 8}
    if args.prediction != "epsilon":
        hparams["prediction"] = args.prediction
    config = TrainConfig(
        model_kind="unet",
        hparams=hparams,
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        warmup_steps=200,
        ema_decay=args.ema,
        checkpoint_every=250,
        seed=0,
        lr_schedule=args.lr_schedule,
        probe_every=args.probe_every,
    )
    probe = None
    if args.probe_every > 0:
        from core.lab.curve import Probe

        started = time.monotonic()
        probe = Probe(images, labels, list(range(PROBE_FIRST_SEED, PROBE_FIRST_SEED + args.probe_seeds)), PROBE_SIZES)
        logger.info("training-curve probe ready in %.0f s (%d seeds)", time.monotonic() - started, args.probe_seeds)
    last = [time.monotonic()]

    def progress(p: TrainProgress) -> None:
        if p.step % 50 == 0 or p.checkpointed:
            now = time.monotonic()
            logger.info(
                "step %d/%d loss %.4f  %.1f s  (%.2f s/step)%s",
                p.step,
                p.total_steps,
                p.loss,
                p.seconds,
                (now - last[0]) / 50,
                "  [checkpoint]" if p.checkpointed else "",
            )
            last[0] = now

    result = train(
        images,
        Path(args.out),
        config,
        labels=labels,
        label_names=LABEL_NAMES,
        library="fashion-mnist-3615",
        on_progress=progress,
        max_seconds=args.minutes * 60,
        probe=probe,
    )
    logger.info("done: step %d, %.0f s total, resumed from %d", result.step, result.seconds, result.resumed_from)


def cmd_calibrate(args: argparse.Namespace) -> None:
    from core.lab.calibrate import calibrate_scales, save_scales
    from core.lab.checkpoint import load_model

    torch.set_num_threads(args.threads)
    images, labels = load_fashion(Path(args.data), args.size)
    model, _ = load_model(Path(args.out))
    top_k = args.top_k if args.top_k > 0 else None
    calibration = calibrate_scales(
        model, images, labels, steps=args.steps, samples=args.samples, kind=args.kind, seed=10_000, top_k=top_k
    )
    save_scales(Path(args.out), calibration)
    logger.info("calibrated %s in %.0f s: %s", args.kind, calibration.seconds, calibration.patch_sizes)


def mode_tag(top_k: int) -> str:
    """``exact``, or ``top<K>`` for the approximate mode: names a comparison's result files."""
    return "exact" if top_k <= 0 else f"top{top_k}"


def cmd_compare(args: argparse.Namespace) -> None:
    from core.lab.calibrate import load_scales, saved_schedules
    from core.lab.checkpoint import load_model
    from core.lab.compare import run_comparison, run_environment

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    images, labels = load_fashion(Path(args.data), args.size)
    model, _ = load_model(out)
    scales = load_scales(out)
    own = {k: c.patch_sizes for k, c in saved_schedules(out).items() if k in args.machines}
    seeds = list(range(args.first, args.first + args.count))
    tag = mode_tag(args.top_k)
    machines = "-".join(args.machines)
    environment = run_environment()
    t0 = time.monotonic()
    table = run_comparison(
        model,
        images,
        labels,
        seeds=seeds,
        steps=scales.steps,
        patch_sizes=scales.patch_sizes,
        kinds=args.machines,
        schedules=own,
        approximate=args.top_k > 0,
        top_k=max(1, args.top_k),
        batch=args.batch,
        grid_path=out / f"comparison_{tag}_{machines}_{args.first}.png",
    )
    data = table.to_json()
    data["info"]["wall_seconds"] = round(time.monotonic() - t0, 1)
    data["info"]["environment"] = environment
    data["info"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    (out / f"compare_{tag}_{machines}_{args.first}.json").write_text(json.dumps(data, indent=2))
    print(table.to_markdown())


def cmd_report(args: argparse.Namespace) -> None:
    from core.lab.calibrate import saved_schedules
    from core.lab.checkpoint import load_config
    from core.lab.compare import ComparisonTable

    out = Path(args.out)
    tag = mode_tag(args.top_k)
    parts = sorted(out.glob(f"compare_{tag}_*_*.json"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if not parts:
        raise SystemExit(f"No compare_{tag}_*.json in {out}: run the compare command first.")
    data = [json.loads(p.read_text()) for p in parts]
    # Seed ranges of one machine set are stacked (merge); machine sets run apart are put side by side (join).
    groups: dict[str, list[ComparisonTable]] = {}
    for path, d in zip(parts, data, strict=True):
        groups.setdefault(path.stem.split("_")[2], []).append(ComparisonTable.from_json(d))
    table = ComparisonTable.join([ComparisonTable.merge(g) for g in groups.values()])
    config = load_config(out)
    text = table.to_markdown()
    print(text)
    kinds = [k for k in table.kinds if k != "is"]
    print(
        "\n" + "\n".join(f"{a} beats {b} on {table.fraction_beats(a, b):.0%}" for a in kinds for b in kinds if a != b)
    )
    seconds: dict[str, float] = {}
    for d in data:
        for kind, value in d["info"].get("seconds", {}).items():
            seconds[kind] = round(seconds.get(kind, 0.0) + value, 1)
    loads = [d["info"].get("environment", {}).get("load_average") for d in data]
    loads += [d["info"].get("load_average_end") for d in data]
    summary = {
        "mode": tag,
        "model_step": config.step,
        "training_seconds": config.info.get("training_seconds"),
        "parameters": config.info.get("parameters"),
        "calibrations": {
            k: {
                "samples": c.samples,
                "top_k": c.top_k,
                "seconds": round(c.seconds, 1),
                "patch_sizes": c.patch_sizes,
                "similarity": c.similarity,
            }
            for k, c in saved_schedules(out).items()
        },
        "comparison_wall_seconds": {p.stem: d["info"].get("wall_seconds") for p, d in zip(parts, data, strict=True)},
        "comparison_wall_seconds_total": round(sum(d["info"].get("wall_seconds") or 0.0 for d in data), 1),
        "seconds_per_machine": seconds,
        "load_averages_1_5_15_min": [v for v in loads if v],
        "environment": data[0]["info"].get("environment"),
        "table": table.to_json(),
    }
    (out / f"bench_summary_{tag}.json").write_text(json.dumps(summary, indent=2))
    (out / f"bench_table_{tag}.md").write_text(text + "\n")
    if args.save:
        save_model_folder(out, Path(args.save), table, summary)


#: what a kept model folder holds (no training state: it is only needed to resume, and triples the size)
KEPT_FILES = ("config.json", "model.safetensors", "scales.json", "scales_ls.json", "scales_els.json")


def save_model_folder(out: Path, target: Path, table, summary: dict) -> None:
    """Copy the model, its calibrations and training curve to ``target`` and save the merged table there as
    ``comparison.json`` (what the Lab page shows), with how it was made."""
    import shutil

    from core.lab.compare import save_comparison
    from core.lab.curve import CURVE_FILE

    if not table.exact():
        raise SystemExit("Only an exact comparison is kept with a model.")
    target.mkdir(parents=True, exist_ok=True)
    for name in (*KEPT_FILES, CURVE_FILE):
        if (out / name).is_file():
            shutil.copyfile(out / name, target / name)
    config = json.loads((out / "config.json").read_text())
    save_comparison(
        target,
        table,
        command="python benchmarks/bench_lab.py compare / report (see BENCHMARKS.md, Creativity Lab)",
        wall_seconds=summary["comparison_wall_seconds_total"],
        model_step=config.get("step"),
        library=config.get("library"),
        size=config.get("size"),
        calibrations={
            k: {key: c[key] for key in ("samples", "top_k", "seconds", "patch_sizes")}
            for k, c in summary["calibrations"].items()
        },
        seconds=summary["seconds_per_machine"],
    )
    logger.info("kept the model and its comparison in %s", target)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--out", required=True)
    tr.add_argument("--steps", type=int, default=30000, help="total steps (stops earlier at --minutes)")
    tr.add_argument("--minutes", type=float, default=50.0)
    tr.add_argument("--batch", type=int, default=32)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    tr.add_argument("--layers", type=int, default=1, help="ResNet layers per UNet block")
    tr.add_argument("--prediction", choices=["epsilon", "v", "x0"], default="epsilon")
    tr.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant")
    tr.add_argument("--ema", type=float, default=0.999)
    tr.add_argument("--probe-every", type=int, default=0, help="measure r against IS and bbELS every N steps")
    tr.add_argument("--probe-seeds", type=int, default=8)
    ca = sub.add_parser("calibrate")
    ca.add_argument("--out", required=True)
    ca.add_argument("--steps", type=int, default=20)
    ca.add_argument("--samples", type=int, default=4)
    ca.add_argument("--kind", choices=["bbels", "els", "ls"], default="bbels", help="machine to calibrate")
    ca.add_argument(
        "--top-k", type=int, default=0, help="approximate: only the K library images nearest per sample (0: exact)"
    )
    co = sub.add_parser("compare")
    co.add_argument("--out", required=True)
    co.add_argument("--first", type=int, default=0)
    co.add_argument("--count", type=int, default=50)
    co.add_argument("--batch", type=int, default=10)
    co.add_argument("--machines", nargs="+", choices=["is", "ls", "els", "bbels"], default=["is", "ls", "els", "bbels"])
    co.add_argument(
        "--top-k", type=int, default=0, help="opt-in approximate machines after 40%% of the steps (default 0: exact)"
    )
    re = sub.add_parser("report")
    re.add_argument("--out", required=True)
    re.add_argument("--top-k", type=int, default=0, help="report the approximate runs of this K (default 0: exact)")
    re.add_argument("--save", help="also keep the model, its curve and the comparison in this folder")
    args = parser.parse_args()
    commands = {"train": cmd_train, "calibrate": cmd_calibrate, "compare": cmd_compare, "report": cmd_report}
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
