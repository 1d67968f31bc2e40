"""A short list of well-known models, with plain-language descriptions and recommended settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CuratedModel:
    """A well-known model on the Hugging Face Hub."""

    repo_id: str
    title: str
    family: str
    description: str
    recommended: dict[str, Any] = field(default_factory=dict)
    download_gb: float = 0.0


CURATED: tuple[CuratedModel, ...] = (
    CuratedModel(
        "stable-diffusion-v1-5/stable-diffusion-v1-5", "Stable Diffusion 1.5", "sd1",
        "The classic all-rounder. Small and quick, huge choice of fine-tunes; best at 512×512.",
        {"steps": 25, "guidance": 7.0, "width": 512, "height": 512, "scheduler": "DPM++ 2M Karras"}, 2.0,
    ),
    CuratedModel(
        "stabilityai/stable-diffusion-2-1", "Stable Diffusion 2.1", "sd2",
        "Sharper 768×768 images than 1.5 and better at landscapes; needs more detailed prompts.",
        {"steps": 25, "guidance": 7.0, "width": 768, "height": 768, "scheduler": "DPM++ 2M Karras"}, 2.6,
    ),
    CuratedModel(
        "stabilityai/stable-diffusion-xl-base-1.0", "Stable Diffusion XL", "sdxl",
        "Best quality and prompt following of the list; 1024×1024. Needs a GPU with 8 GB or more.",
        {"steps": 25, "guidance": 6.0, "width": 1024, "height": 1024, "scheduler": "DPM++ 2M Karras"}, 6.9,
    ),
    CuratedModel(
        "stabilityai/sdxl-turbo", "SDXL Turbo", "sdxl-turbo",
        "Near-instant drafts in 1-4 steps at 512×512. Use guidance 0; no negative prompt.",
        {"steps": 1, "guidance": 0.0, "width": 512, "height": 512, "scheduler": "Euler a"}, 6.9,
    ),
    CuratedModel(
        "stabilityai/sd-turbo", "SD Turbo", "sd-turbo",
        "The fastest: 1-4 steps at 512×512, runs on modest GPUs. Use guidance 0.",
        {"steps": 1, "guidance": 0.0, "width": 512, "height": 512, "scheduler": "Euler a"}, 2.6,
    ),
)


def curated(repo_id: str) -> CuratedModel | None:
    for model in CURATED:
        if model.repo_id.lower() == repo_id.lower():
            return model
    return None
