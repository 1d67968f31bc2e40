"""The committed demo model: how it was made, and how to make it again.

``python -m core.lab.demo --out assets/models/digits-unet-16`` trains a small UNet on the built-in
"digits" library at 16×16 (class-conditional), calibrates its bbELS patch sizes and writes the model
folder without the training state (so it stays small). Roughly 20 minutes on one CPU core.

``python -m core.lab.demo --compare-only --seeds 50`` (:func:`compare_demo`) calibrates the LS and
ELS schedules of the model folder when it has none yet (``scales_ls.json``, ``scales_els.json``) and
writes the exact comparison of the network with IS, LS, ELS and bbELS over seeds ``0..49``
(``comparison.json``, shown on the Lab page).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from core.lab.compare import ComparisonTable
from core.lab.train import TrainConfig, TrainProgress, train_library

logger = logging.getLogger(__name__)

#: Where the committed demo model lives, relative to the repository root.
DEMO_MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "models" / "digits-unet-16"
DEMO_LIBRARY = "digits"
#: The Fashion-MNIST model of the Lab's agreement figures (trained by ``benchmarks/bench_lab.py``; its folder holds
#: the exact comparison over 100 seeds and the training curve, which the Lab page shows).
FASHION_MODEL_DIR = DEMO_MODEL_DIR.parent / "fashion-unet-32"
DEMO_SIZE = 16

DEMO_CONFIG = TrainConfig(
    model_kind="unet",
    hparams={"block_channels": [32, 64], "layers_per_block": 1, "norm_groups": 8},
    steps=3000,
    batch_size=32,
    lr=1e-3,
    warmup_steps=200,
    ema_decay=0.999,
    checkpoint_every=250,
    seed=0,
)


def make_demo(work: Path, out: Path, minutes: float, calibration_samples: int = 8) -> None:
    """Train in ``work`` (resumable, skipped when ``minutes`` ≤ 0), calibrate (skipped when
    ``calibration_samples`` ≤ 0), and copy the model files to ``out``."""

    def progress(p: TrainProgress) -> None:
        if p.step % 100 == 0 or p.checkpointed:
            logger.info("step %d/%d loss %.4f %.0f s", p.step, p.total_steps, p.loss, p.seconds)

    if minutes > 0:
        result = train_library(
            DEMO_LIBRARY, DEMO_SIZE, work, DEMO_CONFIG, on_progress=progress, max_seconds=minutes * 60
        )
        logger.info("trained to step %d in %.0f s", result.step, result.seconds)
    if calibration_samples <= 0:
        return
    from core.lab.calibrate import calibrate_scales, save_scales
    from core.lab.checkpoint import CONFIG_FILE, SCALES_FILE, WEIGHTS_FILE, load_model
    from core.libraries import LibraryManager

    model, _ = load_model(work)
    lib = LibraryManager().load(DEMO_LIBRARY, DEMO_SIZE)
    calibration = calibrate_scales(model, lib.images, lib.labels, steps=20, samples=calibration_samples, kind="bbels")
    save_scales(work, calibration)
    logger.info("calibrated patch sizes %s", calibration.patch_sizes)
    out.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE, SCALES_FILE):
        shutil.copyfile(work / name, out / name)


def compare_demo(
    folder: Path = DEMO_MODEL_DIR,
    seeds: int = 50,
    calibrate_kinds: Sequence[str] = ("ls", "els"),
    calibration_samples: int | None = None,
    command: str | None = None,
    libraries: object = None,
) -> ComparisonTable:
    """Exact comparison of the model in ``folder`` with IS, LS, ELS and bbELS over seeds ``0..seeds-1``,
    saved as ``comparison.json`` next to the model.

    Each of ``calibrate_kinds`` the folder has no schedule for is first calibrated exactly on its own
    (``calibration_samples`` trajectories; default: as many as the bbELS calibration used).
    """
    from core.lab.calibrate import load_scales, scales_file
    from core.lab.workflow import calibrate_saved_model, compare_saved_model

    folder = Path(folder)
    bbels = load_scales(folder)
    samples = calibration_samples or bbels.samples or 4
    for kind in calibrate_kinds:
        if not (folder / scales_file(kind)).is_file():
            calibration = calibrate_saved_model(
                folder, samples=samples, steps=bbels.steps, kind=kind, libraries=libraries
            )
            logger.info("calibrated %s in %.0f s: %s", kind, calibration.seconds, calibration.patch_sizes)
    table = compare_saved_model(
        folder,
        seeds=range(seeds),
        kinds=("is", "ls", "els", "bbels"),
        libraries=libraries,
        save=True,
        command=command or f"python -m core.lab.demo --compare-only --seeds {seeds}",
    )
    logger.info("comparison of %d seeds:\n%s", seeds, table.to_markdown())
    return table


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description="Train and calibrate the Creativity Lab demo model.")
    parser.add_argument("--work", default="/tmp/lab_demo_work", help="training folder (resumable)")
    parser.add_argument("--out", default=str(DEMO_MODEL_DIR))
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calibration-samples", type=int, default=8, help="0: train only")
    parser.add_argument(
        "--compare-only",
        action="store_true",
        help="no training: calibrate missing LS/ELS schedules of --out and save its exact comparison.json",
    )
    parser.add_argument("--seeds", type=int, default=50, help="seeds 0..N-1 of --compare-only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare_only:
        command = f"python -m core.lab.demo --compare-only --seeds {args.seeds} --threads {args.threads}"
        compare_demo(Path(args.out), args.seeds, command=command)
        return
    make_demo(Path(args.work), Path(args.out), args.minutes, args.calibration_samples)


if __name__ == "__main__":
    main()
