"""File checks before anything is loaded: safetensors only, complete files, known pipeline classes."""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path
from typing import Any

from core.errors import BadInputError

logger = logging.getLogger(__name__)

#: pickle-based weight formats: loading them can run arbitrary code
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
#: the pipeline classes this engine runs (a folder naming another class is refused)
ALLOWED_PIPELINES = frozenset(
    {
        "StableDiffusionPipeline",
        "StableDiffusionImg2ImgPipeline",
        "StableDiffusionInpaintPipeline",
        "StableDiffusionXLPipeline",
        "StableDiffusionXLImg2ImgPipeline",
        "StableDiffusionXLInpaintPipeline",
    }
)
#: libraries a model_index.json component may come from (anything else would be custom code)
ALLOWED_LIBRARIES = frozenset({"diffusers", "transformers", "stable_diffusion", "stable_diffusion_xl", None})
MAX_HEADER_BYTES = 100 * 2**20


def refuse_pickle(path: Path) -> None:
    """Raise for ``.ckpt``/``.pt``/``.bin`` files, explaining why and what to do instead."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise BadInputError(
            f"{path.name} is a '{path.suffix}' file. These files use Python pickle, which can run any code "
            "on this computer when opened, so the studio does not load them. Use the .safetensors version "
            "of this model (most models publish one), or convert it on a trusted machine."
        )


def safetensors_header(path: Path) -> dict[str, Any]:
    """The header of a ``.safetensors`` file; raises ``BadInputError`` when the file is cut off or not one."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            raw = handle.read(8)
            if len(raw) < 8:
                raise ValueError("shorter than a header")
            (length,) = struct.unpack("<Q", raw)
            if length <= 0 or length > MAX_HEADER_BYTES or 8 + length > size:
                raise ValueError("header length out of range")
            header = json.loads(handle.read(length))
    except OSError as exc:
        raise BadInputError(f"{path.name} could not be read ({exc.strerror or exc}).") from exc
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(
            f"{path.name} is not a valid .safetensors file: it is damaged or incomplete "
            "(perhaps cut off while downloading or copying). Download it again."
        ) from exc
    if not isinstance(header, dict):
        raise BadInputError(f"{path.name} is not a valid .safetensors file (its header is not a table of weights).")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise BadInputError(f"{path.name} is not a valid .safetensors file (bad header).")
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise BadInputError(f"{path.name} is not a valid .safetensors file (bad header).") from exc
    if 8 + length + end > size:
        missing = 8 + length + end - size
        raise BadInputError(
            f"{path.name} is incomplete: {missing / 2**20:.1f} MB are missing at the end (the download or "
            "copy was probably interrupted). Download it again."
        )
    return header


def read_model_index(folder: Path) -> dict[str, Any]:
    """``model_index.json`` of a diffusers folder, checked: allowed class, no custom code, safe weights."""
    index_path = folder / "model_index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{folder.name}/model_index.json could not be read: the folder is damaged.") from exc
    if not isinstance(index, dict):
        raise BadInputError(
            f"{folder.name}/model_index.json is not a diffusers model description (it should be a JSON object "
            "with _class_name and the model's parts). Choose a Stable Diffusion model folder."
        )
    class_name = index.get("_class_name")
    if not isinstance(class_name, str) or class_name not in ALLOWED_PIPELINES:
        kind = f"a {class_name}" if isinstance(class_name, str) and class_name else "an unknown kind of"
        raise BadInputError(
            f"{folder.name} holds {kind} pipeline. The Stable Diffusion engine runs "
            "Stable Diffusion 1.x, 2.x and XL models (including Turbo)."
        )
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2:
            continue
        if value[0] is not None and not (isinstance(value[0], str) and isinstance(value[1], str)):
            raise BadInputError(
                f"{folder.name}/model_index.json describes component '{name}' in a way the studio "
                "does not understand: the folder is damaged."
            )
        if value[0] not in ALLOWED_LIBRARIES:
            raise BadInputError(
                f"{folder.name}: component '{name}' needs custom code ({value[0]}), which the studio never runs."
            )
    return index


def check_folder_weights(folder: Path, index: dict[str, Any]) -> None:
    """Every component with weights has complete safetensors weights (pickle-only ones are refused)."""
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        sub = folder / name
        if not sub.is_dir():
            continue
        safe = sorted(sub.glob("*.safetensors"))
        pickled = [p for p in sub.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if not safe and pickled:
            raise BadInputError(
                f"{folder.name}/{name} only has pickle weights ({pickled[0].name}). The studio loads "
                "only .safetensors weights, because pickle files can run code. Get the safetensors version."
            )
        for weights in safe:
            safetensors_header(weights)
