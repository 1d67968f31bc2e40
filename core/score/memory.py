"""Memory budget of one machine evaluation and how it is split into chunks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

#: Never use more than this for one buffer of logits, whatever the budget.
MAX_LOGITS_BYTES = 512 * 1024**2
#: Logit tiles of about the L2 cache are fastest on CPU (the element-wise passes then stay in cache;
#: 1–2 MB measured best on the 2-core dev VM, 8 MB was ~30 % slower); on CUDA larger tiles help.
CPU_TILE_BYTES = 2 * 1024**2
FLOAT_BYTES = 4


def available_memory_bytes(device: torch.device) -> int:
    """Free memory of ``device``: ``torch.cuda.mem_get_info`` on CUDA, ``MemAvailable`` otherwise."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        logger.debug("cannot read /proc/meminfo; assuming 4 GiB available")
    return 4 * 1024**3


def default_budget_bytes(device: torch.device) -> int:
    """A quarter of the free memory: the working memory of one machine evaluation."""
    return max(1, available_memory_bytes(device) // 4)


#: On CPU, library chunks above this size are not faster, only heavier on memory.
CPU_CHUNK_BYTES = 256 * 1024**2


@dataclass(frozen=True)
class ChunkPlan:
    """Library images per chunk and elements per logit tile."""

    images_per_chunk: int
    tile_elements: int


def plan_chunks(budget_bytes: int, device: torch.device, bytes_per_image: int, num_library: int) -> ChunkPlan:
    """Split a budget between a library chunk (``bytes_per_image`` of working memory per image:
    gathered patches, box sums) and the two logit buffers of one tile.

    Half of the budget goes to the chunk, a quarter to the logit buffers. Both are at least one
    image / one element, so a tiny budget still gives the exact result, in many more pieces.
    """
    chunk_bytes = budget_bytes // 2
    if device.type != "cuda":
        chunk_bytes = min(chunk_bytes, CPU_CHUNK_BYTES)
    images = max(1, min(num_library, chunk_bytes // max(1, bytes_per_image)))
    tile_cap = CPU_TILE_BYTES if device.type != "cuda" else MAX_LOGITS_BYTES
    tile_bytes = min(budget_bytes // 8, tile_cap)
    return ChunkPlan(images_per_chunk=images, tile_elements=max(1, tile_bytes // FLOAT_BYTES))


def local_bytes_per_image(
    channels: int, height: int, width: int, patch_size: int, batch: int, kind: str = "bbels"
) -> int:
    """Working memory per library image of a local machine chunk."""
    padded = (height + patch_size) * (width + patch_size)
    if kind == "bbels":
        inner = max(0, height - 2 * (patch_size // 2)) * max(0, width - 2 * (patch_size // 2))
    elif kind == "ls":
        inner = 0  # every class is one position: box sums only, no gathered patches
    else:
        inner = height * width
    gathered = 2 * channels * patch_size * patch_size * inner * FLOAT_BYTES
    box_sums = 3 * (batch + 1) * channels * padded * 8
    edges = 2 * (patch_size - 1) * batch * padded * FLOAT_BYTES if kind == "bbels" else 0  # edge products
    return gathered + box_sums + edges
