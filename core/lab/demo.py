"""The committed demo model: how it was made, and how to make it again.

``python -m core.lab.demo --out assets/models/digits-unet-16`` trains a small UNet on the built-in
"digits" library at 16×16 (class-conditional), calibrates its bbELS patch sizes and writes the model
folder without the training state (so it stays small). Roughly 20 minutes on one CPU core.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import torch

from core.lab.train import TrainConfig, TrainProgress, train_library

logger = logging.getLogger(__name__)

#: Where the committed demo model lives, relative to the repository root.
DEMO_MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "models" / "digits-unet-16"
DEMO_LIBRARY = "digits"
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


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description="Train and calibrate the Creativity Lab demo model.")
    parser.add_argument("--work", default="/tmp/lab_demo_work", help="training folder (resumable)")
    parser.add_argument("--out", default=str(DEMO_MODEL_DIR))
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calibration-samples", type=int, default=8, help="0: train only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    make_demo(Path(args.work), Path(args.out), args.minutes, args.calibration_samples)


if __name__ == "__main__":
    main()
