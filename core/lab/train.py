"""Training of the Lab's networks on a library (CPU with small settings, or CUDA).

Loss: ``‖f_θ(sqrt(ā) x0 + sqrt(1 - ā) ε, t) − target‖²`` with ``t ~ U(0, 1)`` and the cosine ``ā(t)`` of
:func:`core.score.alpha_bar`; the target is ``ε``, ``v`` or ``x0`` as the network's ``prediction`` says
(:mod:`core.lab.parameterization`; ``v`` trains fastest to a good model at this schedule). The network is
sampled by :func:`core.lab.ddim.ddim_sample` on the same grid and from the same noise as the score machines.
Class-conditional when the library has labels (a fraction of labels is dropped to a null class so
unconditional sampling also works). The sampling weights are an exponential moving average (EMA) of the
trained weights. The learning rate warms up, then stays (``lr_schedule="constant"``) or follows a cosine
down to ``min_lr_ratio · lr`` at ``steps`` (``"cosine"``). With a ``probe`` the EMA network is measured
every ``probe_every`` steps and the training curve is kept in ``training_curve.json`` (see
:mod:`core.lab.curve`).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import BadInputError, GenerationCancelled
from core.lab.checkpoint import (
    STATE_FILE,
    ModelConfig,
    load_config,
    load_training_state,
    save_model,
    save_training_state,
)
from core.lab.curve import Probe, append_curve_point, load_curve, start_curve
from core.lab.models import build_model, parameter_count
from core.lab.parameterization import model_prediction, training_target
from core.score.schedules import alpha_bar

logger = logging.getLogger(__name__)

#: Default hyper-parameters of each model kind (small enough for a CPU).
DEFAULT_HPARAMS: dict[str, dict[str, Any]] = {
    "unet": {"block_channels": [32, 64, 64], "layers_per_block": 1, "norm_groups": 8},
    "resnet": {"width": 64, "blocks": 6, "emb_dim": 128},
}

LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Training settings. ``steps`` is the total step count to reach (resuming continues to it)."""

    model_kind: str = "unet"
    hparams: dict[str, Any] = field(default_factory=dict)
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    label_dropout: float = 0.1
    conditional: bool = True
    hflip: bool = False
    seed: int = 0
    checkpoint_every: int = 500
    device: str | None = None
    lr_schedule: str = "constant"
    min_lr_ratio: float = 0.1
    probe_every: int = 0

    def resolved_hparams(self) -> dict[str, Any]:
        if self.lr_schedule not in LR_SCHEDULES:
            choices = ", ".join(LR_SCHEDULES)
            raise BadInputError(f"Unknown learning-rate schedule {self.lr_schedule!r}: choose {choices}.")
        if self.model_kind not in DEFAULT_HPARAMS:
            raise BadInputError(f"Unknown model kind {self.model_kind!r}. Valid kinds: {', '.join(DEFAULT_HPARAMS)}.")
        return {**DEFAULT_HPARAMS[self.model_kind], **self.hparams}


@dataclass
class TrainProgress:
    step: int
    total_steps: int
    loss: float
    seconds: float
    checkpointed: bool = False


@dataclass
class TrainResult:
    folder: Path
    step: int
    seconds: float
    losses: list[float]
    resumed_from: int


TrainCallback = Callable[[TrainProgress], None]


def _device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers(), strict=True):
            e.copy_(b)


def diffusion_loss(
    model: nn.Module, x0: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    """MSE of the network's prediction (ε, v or x0) at uniformly drawn times ``t`` in ``[0, 1]``."""
    batch = x0.shape[0]
    t = torch.rand(batch, generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    ab = alpha_bar(t).view(batch, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise
    target = training_target(model_prediction(model), x0, noise, ab)
    return torch.mean((model(x_t, t, labels) - target) ** 2)


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of ``step`` (0-based): linear warm-up, then constant or cosine decay."""
    warm = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
    if config.lr_schedule == "constant" or step < config.warmup_steps:
        return warm
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    low = config.lr * config.min_lr_ratio
    return low + 0.5 * (config.lr - low) * (1.0 + math.cos(math.pi * progress))


def train(
    images: torch.Tensor,
    folder: Path,
    config: TrainConfig,
    labels: torch.Tensor | None = None,
    label_names: list[str] | None = None,
    library: str | None = None,
    on_progress: TrainCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    resume: bool = True,
    max_seconds: float | None = None,
    probe: Probe | None = None,
) -> TrainResult:
    """Train (or resume training) a network on ``images`` ``(N, C, S, S)`` in ``[-1, 1]``.

    Writes ``folder`` (see :mod:`core.lab.checkpoint`) every ``config.checkpoint_every`` steps and at
    the end. With ``resume`` and an existing ``training_state.safetensors`` the step count, weights,
    EMA, optimizer and data order continue where they stopped. ``max_seconds`` stops early (with a
    checkpoint) after that much wall time. Cancelling (``should_cancel``) also checkpoints first and
    then raises :class:`~core.errors.GenerationCancelled`.
    """
    if images.dim() != 4 or images.shape[2] != images.shape[3] or images.shape[0] == 0:
        raise BadInputError(f"Training images must be a non-empty tensor (N, C, S, S); got {tuple(images.shape)}.")
    folder = Path(folder)
    device = _device(config.device)
    hparams = config.resolved_hparams()
    size, channels = int(images.shape[2]), int(images.shape[1])
    use_labels = config.conditional and labels is not None and bool((labels >= 0).any()) and bool(label_names)
    names = list(label_names or []) if use_labels else []
    num_classes = len(names)
    torch.manual_seed(config.seed)
    model = build_model(config.model_kind, size, channels, num_classes, hparams).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    rng = torch.Generator().manual_seed(config.seed)
    model_config = ModelConfig(
        model_kind=config.model_kind,
        size=size,
        channels=channels,
        num_classes=num_classes,
        hparams=hparams,
        label_names=names,
        library=library,
        step=0,
        train=asdict(config),
        info={"parameters": parameter_count(model), "train_images": int(images.shape[0]), "training_seconds": 0.0},
    )
    start_step, previous_seconds = 0, 0.0
    if resume and (folder / STATE_FILE).is_file():
        old = load_config(folder)
        if (old.model_kind, old.size, old.channels, old.num_classes, old.hparams) != (
            config.model_kind,
            size,
            channels,
            num_classes,
            hparams,
        ):
            raise BadInputError(f"{folder} holds a different model; choose another folder or resume=False.")
        ema, _ = _load_ema(folder, ema)
        start_step = load_training_state(folder, model, optimizer, rng)
        previous_seconds = float(old.info.get("training_seconds", 0.0))
        model_config.info = {**old.info, **{k: v for k, v in model_config.info.items() if k != "training_seconds"}}
        logger.info("resuming %s at step %d", folder, start_step)
    if probe is not None and (start_step == 0 or load_curve(folder) is None):
        folder.mkdir(parents=True, exist_ok=True)
        start_curve(folder, probe)
    data = images.to(torch.float32)
    lab = labels.to(torch.long) if use_labels and labels is not None else None
    model.train()
    started = time.monotonic()
    losses: list[float] = []
    window: list[float] = []
    step = start_step
    probed = -1

    def measure() -> None:
        nonlocal probed
        if probe is None or probed == step:
            return
        seconds = previous_seconds + time.monotonic() - started
        point = {"step": step, "training_seconds": round(seconds, 1)}
        if window:
            point["loss"] = round(sum(window) / len(window), 6)
            window.clear()
        point.update(probe(ema))
        append_curve_point(folder, point)
        probed = step
        logger.info("training curve at step %d: %s", step, point)

    def checkpoint() -> None:
        model_config.step = step
        model_config.info["training_seconds"] = round(previous_seconds + time.monotonic() - started, 1)
        save_model(folder, ema, model_config)
        save_training_state(folder, model, optimizer, step, rng)
        logger.info("checkpoint %s at step %d", folder, step)

    while step < config.steps:
        if should_cancel is not None and should_cancel():
            checkpoint()
            raise GenerationCancelled("Training stopped; the last checkpoint was saved and can be resumed.")
        index = torch.randint(0, data.shape[0], (config.batch_size,), generator=rng)
        x0 = data[index]
        if config.hflip:
            flip = torch.rand(config.batch_size, generator=rng) < 0.5
            x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
        batch_labels = None
        if lab is not None:
            batch_labels = lab[index].clone()
            drop = torch.rand(config.batch_size, generator=rng) < config.label_dropout
            batch_labels[drop] = -1
            batch_labels = batch_labels.to(device)
        lr = learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = diffusion_loss(model, x0.to(device), batch_labels, rng)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise BadInputError(f"Training diverged at step {step} (loss {loss_value}); try a lower learning rate.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        _ema_update(ema, model, min(config.ema_decay, (1.0 + step) / (10.0 + step)))
        losses.append(loss_value)
        window.append(loss_value)
        if probe is not None and config.probe_every > 0 and step % config.probe_every == 0:
            measure()
        saved = False
        out_of_time = max_seconds is not None and time.monotonic() - started >= max_seconds
        if step % config.checkpoint_every == 0 or step == config.steps or out_of_time:
            checkpoint()
            saved = True
        if on_progress is not None:
            on_progress(TrainProgress(step, config.steps, loss_value, time.monotonic() - started, saved))
        if out_of_time:
            logger.info("time budget reached at step %d", step)
            break
    if step == start_step:
        checkpoint()
    if probe is not None and config.probe_every > 0:
        measure()
    return TrainResult(folder, step, previous_seconds + time.monotonic() - started, losses, start_step)


def _load_ema(folder: Path, ema: nn.Module) -> tuple[nn.Module, int]:
    from safetensors.torch import load_file

    from core.lab.checkpoint import WEIGHTS_FILE

    device = next(ema.parameters()).device
    ema.load_state_dict({k: v.to(device) for k, v in load_file(str(folder / WEIGHTS_FILE)).items()})
    return ema, 0


def train_library(
    library: str,
    size: int,
    folder: Path,
    config: TrainConfig,
    manager: Any = None,
    **kwargs: Any,
) -> TrainResult:
    """Train on a studio library (:class:`~core.libraries.LibraryManager`) at ``size`` px."""
    from core.libraries import LibraryManager

    lib = (manager or LibraryManager()).load(library, size)
    has_labels = bool(lib.label_names) and bool((lib.labels >= 0).any())
    return train(
        lib.images,
        folder,
        config,
        labels=lib.labels if has_labels else None,
        label_names=lib.label_names if has_labels else None,
        library=library,
        **kwargs,
    )
