"""Generation requests as JSON job parameters, and back.

A job's parameters are stored in the database, so a request travels as plain JSON: its dataclass
fields, with pictures (an init image, an inpainting mask) saved as PNG files under the data folder's
``uploads/`` and referenced by path. Only the studio's own request classes can be rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

from PIL import Image

from core import config
from core.engines.base import GenerationRequest
from core.errors import BadInputError

_IMAGE_KEY = "__image__"


def _request_classes() -> dict[str, type[GenerationRequest]]:
    from core.engines.local_score import LocalScoreRequest
    from core.engines.sd.request import SDRequest
    from core.engines.trained import TrainedModelRequest

    return {"local-score": LocalScoreRequest, "sd": SDRequest, "trained": TrainedModelRequest}


def uploads_dir() -> Path:
    path = config.data_dir() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_upload_image(image: Image.Image) -> str:
    """Keep a picture a job needs; returns its name in the uploads folder.

    The name is the SHA-256 of the PNG, so the same picture submitted twice (a double click) is the same
    parameter, and one job.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    name = f"{hashlib.sha256(data).hexdigest()[:32]}.png"
    final = uploads_dir() / name
    if not final.is_file():
        tmp = uploads_dir() / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_bytes(data)
        tmp.replace(final)
    return name


def encode_request(engine: str, request: GenerationRequest) -> dict[str, Any]:
    """JSON parameters of a generation job."""
    classes = _request_classes()
    if engine not in classes or not isinstance(request, classes[engine]):
        raise BadInputError(f"Unknown engine {engine!r}.")
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(request):
        value = getattr(request, field.name)
        if isinstance(value, Image.Image):
            value = {_IMAGE_KEY: save_upload_image(value)}
        fields[field.name] = value
    return {"engine": engine, "request": fields}


def decode_request(params: dict[str, Any]) -> tuple[str, GenerationRequest]:
    """The engine name and request of a generation job's parameters."""
    classes = _request_classes()
    engine = params.get("engine")
    if engine not in classes:
        raise BadInputError(f"This job names an unknown engine {engine!r}.")
    cls = classes[engine]
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in dict(params.get("request") or {}).items():
        if key not in names:
            continue
        if isinstance(value, dict) and _IMAGE_KEY in value:
            path = (uploads_dir() / str(value[_IMAGE_KEY])).resolve()
            if path.parent != uploads_dir().resolve() or not path.is_file():
                raise BadInputError("A picture this job needs is missing from the studio's uploads folder.")
            with Image.open(path) as img:
                img.load()
                value = img.copy()
        values[key] = value
    return engine, cls(**values)


def device_for(engine: str) -> str:
    """The device a generation job asks for: Stable Diffusion wants a GPU when this machine has one."""
    if engine != "sd":
        return "cpu"
    try:
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    except Exception:  # a broken CUDA install: the CPU
        return "cpu"
