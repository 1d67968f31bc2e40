"""Plain records returned by :class:`~core.libraries.manager.LibraryManager`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads only where tensors are made (1-2 s): listing libraries does not need it
    import torch


@dataclass
class LibraryInfo:
    """What the studio shows about a library. ``built`` is False for a built-in not yet made."""

    name: str
    title: str
    description: str
    kind: str  # "builtin" | "user"
    count: int
    channels: int  # 1 (grayscale) or 3 (colour)
    label_names: list[str]
    created_at: str
    built: bool


@dataclass
class ImportReport:
    """Outcome of an import: how many images were added, which files were skipped and why."""

    library: str
    added: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (filename, reason)
    notices: list[str] = field(default_factory=list)


@dataclass
class LibraryTensor:
    """A whole library as one batch, in the order of :meth:`LibraryManager.items`.

    ``images`` is ``(N, C, S, S)`` float32 in ``[-1, 1]``; ``labels`` is ``(N,)`` int64 with
    ``-1`` for "no label"; ``labels[i]`` indexes ``label_names``; ``item_ids[i]`` is the item id.
    """

    images: torch.Tensor
    labels: torch.Tensor
    label_names: list[str]
    item_ids: list[str]


@dataclass
class LibraryPixels:
    """A whole library as ``(N, C, S, S)`` uint8 pixels, read through a memory map (nothing is held in
    memory until rows are used), in the order of :meth:`LibraryManager.items`."""

    pixels: np.ndarray
    item_ids: list[str]
    channels: int
