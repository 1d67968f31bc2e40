"""Model folders: safetensors weights + JSON, never pickle.

A model folder holds

* ``config.json`` – model kind, hyper-parameters, image size, channels, label names, library, step
  count, training settings and timings;
* ``model.safetensors`` – the weights used for sampling (the EMA weights);
* ``training_state.safetensors`` – (optional, only needed to resume) the raw weights, the optimizer
  state and the data RNG state; the optimizer's param groups are JSON in the file's metadata;
* ``scales.json`` – (optional) calibrated bbELS patch sizes, see :mod:`core.lab.calibrate`
  (``scales_ls.json`` / ``scales_els.json``: separate LS / ELS calibrations);
* ``comparison.json`` – (optional) the network versus the score machines, see :mod:`core.lab.compare`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from core.errors import BadInputError
from core.lab.models import build_model

logger = logging.getLogger(__name__)

FORMAT = "mosaic-lab-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "training_state.safetensors"
SCALES_FILE = "scales.json"
COMPARISON_FILE = "comparison.json"


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network and interpret its outputs."""

    model_kind: str
    size: int
    channels: int
    num_classes: int
    hparams: dict[str, Any]
    label_names: list[str] = field(default_factory=list)
    library: str | None = None
    step: int = 0
    train: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "prediction": str(self.hparams.get("prediction", "epsilon")),
            "schedule": "alpha_bar(t) = cos^2((t / 1.008) * pi / 2), t in [0, 1], network time input t * 1000",
            "model_kind": self.model_kind,
            "size": self.size,
            "channels": self.channels,
            "num_classes": self.num_classes,
            "hparams": self.hparams,
            "label_names": self.label_names,
            "library": self.library,
            "step": self.step,
            "train": self.train,
            "info": self.info,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelConfig:
        if data.get("format") != FORMAT:
            raise BadInputError("This folder does not hold a Creativity Lab model (config.json has the wrong format).")
        if int(data.get("version", 0)) > FORMAT_VERSION:
            raise BadInputError("This model was saved by a newer version of the studio.")
        return cls(
            model_kind=str(data["model_kind"]),
            size=int(data["size"]),
            channels=int(data["channels"]),
            num_classes=int(data["num_classes"]),
            hparams=dict(data.get("hparams", {})),
            label_names=[str(n) for n in data.get("label_names", [])],
            library=data.get("library"),
            step=int(data.get("step", 0)),
            train=dict(data.get("train", {})),
            info=dict(data.get("info", {})),
        )

    def build(self) -> nn.Module:
        return build_model(self.model_kind, self.size, self.channels, self.num_classes, self.hparams)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")

    _atomic_write(path, write)


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise BadInputError(f"No {path.name} in {path.parent}: is this a Creativity Lab model folder?") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"Could not read {path}: {exc}") from exc


def _tensors(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_model(folder: Path, model: nn.Module, config: ModelConfig) -> None:
    """Write ``model.safetensors`` (from ``model``'s weights) and ``config.json``."""
    folder = Path(folder)
    weights = _tensors(model.state_dict(), "")
    _atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(weights, tmp, metadata={"format": FORMAT}))
    write_json(folder / CONFIG_FILE, config.to_json())


def load_config(folder: Path) -> ModelConfig:
    return ModelConfig.from_json(read_json(Path(folder) / CONFIG_FILE))


def load_model(folder: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig]:
    """The network of a model folder (eval mode, on ``device``) and its config."""
    folder = Path(folder)
    config = load_config(folder)
    model = config.build()
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise BadInputError(f"No {WEIGHTS_FILE} in {folder}.")
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise BadInputError(
            f"The weights in {path} do not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})."
        )
    return model.to(device).eval(), config


def save_training_state(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    rng: torch.Generator,
) -> None:
    """Raw weights, optimizer state (tensors) and data RNG state; param groups as JSON metadata."""
    opt = optimizer.state_dict()
    tensors = _tensors(model.state_dict(), "model.")
    for index, state in opt["state"].items():
        for name, value in state.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{index}.{name}"] = tensor.detach().to("cpu").contiguous().clone()
    tensors["rng"] = rng.get_state().clone()
    metadata = {"format": FORMAT, "step": str(int(step)), "param_groups": json.dumps(opt["param_groups"])}
    _atomic_write(Path(folder) / STATE_FILE, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_training_state(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, rng: torch.Generator) -> int:
    """Restore what :func:`save_training_state` wrote; returns the step count."""
    from safetensors import safe_open

    path = Path(folder) / STATE_FILE
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    device = next(model.parameters()).device
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})
    rng.set_state(tensors["rng"])
    return int(metadata.get("step", "0"))
