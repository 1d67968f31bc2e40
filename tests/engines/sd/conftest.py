"""Tiny SD 1.x and SDXL pipelines, built once per test session (diffusers folders + single files)."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# make ``tests.engines.sd.tiny`` importable however pytest was started (``pytest`` or ``python -m pytest``)
_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@dataclass(frozen=True)
class TinyModels:
    sd15: Path
    sdxl: Path
    sd15_file: Path  # single-file checkpoint; its configs are the sibling folder "sd15-single"
    sdxl_file: Path
    sd15_config: Path
    sdxl_config: Path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> TinyModels:
    from tests.engines.sd.tiny import build_tiny_sd15, build_tiny_sdxl, write_single_file

    root = tmp_path_factory.mktemp("sd-models")
    sd15 = build_tiny_sd15(root / "tiny-sd15")
    sdxl = build_tiny_sdxl(root / "tiny-sdxl")
    files = root / "files"
    sd15_file = write_single_file(sd15, files / "sd15-single.safetensors")
    sdxl_file = write_single_file(sdxl, files / "sdxl-single.safetensors")
    # configs for the single files, in the places the loader looks: explicit config= or "<stem>/"
    shutil.copytree(sd15, files / "sd15-single", ignore=shutil.ignore_patterns("*.safetensors"))
    sdxl_config = root / "sdxl-config"
    shutil.copytree(sdxl, sdxl_config, ignore=shutil.ignore_patterns("*.safetensors"))
    return TinyModels(sd15, sdxl, sd15_file, sdxl_file, files / "sd15-single", sdxl_config)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Other work shares this machine: one torch thread keeps tiny models fast and timings stable."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def engine():
    from core.engines.sd import PipelineCache, StableDiffusionEngine

    return StableDiffusionEngine(cache=PipelineCache(max_loaded=6))
