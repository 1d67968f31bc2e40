"""Initial noise from seeds, shared by every engine that samples with DDIM."""

from __future__ import annotations

import torch


def seeded_noise(seeds: list[int], channels: int, size: int) -> torch.Tensor:
    """``(len(seeds), C, S, S)`` standard normal noise, one CPU generator per seed.

    Sample ``i`` depends only on ``seeds[i]``, so any image of a batch can be reproduced alone, and
    the local score machines and a trained network started from the same seed see the same noise.
    """
    out = []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        out.append(torch.randn(1, channels, size, size, generator=generator))
    return torch.cat(out)
