"""What the machine has free: memory for planning runs."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


def available_memory_bytes(device: str | torch.device = "cpu") -> int:
    """Free memory on ``device`` in bytes (MemAvailable on Linux CPUs; a safe default elsewhere)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 4 * 2**30
