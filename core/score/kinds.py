"""The four machine kinds and which library patch positions each pixel may compare with.

Per image axis, positions are split into *class buckets*. A bucket is an integer tensor of shape
``[n_classes, class_size]``: each row is one class of positions that are interchangeable. Pixel
``i`` compares with library patches centred at every position of its class:

* ``ls``  – every position is its own class: ``[H, 1]``.
* ``els`` – one class with all positions (circular padding): ``[1, H]``.
* ``bbels`` – with ``r = P // 2``: positions ``i < r`` or ``i ≥ H - r`` are exact classes
  (``[2r, 1]``) and the interior ``[r, H - r)`` is one class (``[1, H - 2r]``).

A 2-D *group bucket* is a row bucket × column bucket: inside one group the set of query positions
equals the set of allowed library positions, so one batched matrix product handles all its groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Machine kinds, in the order the UI lists them.
MACHINE_KINDS: tuple[str, ...] = ("is", "ls", "els", "bbels")

#: Kind -> (short label, one-line plain-language description).
MACHINE_LABELS: dict[str, tuple[str, str]] = {
    "is": ("Ideal score", "Compares whole images: reproduces library images (memorises)."),
    "ls": ("Local score", "Each pixel compares small patches taken at the same place in library images."),
    "els": (
        "Equivariant local score",
        "Each pixel compares patches taken anywhere in library images (wrap-around edges).",
    ),
    "bbels": (
        "Boundary-aware local score",
        "Like equivariant, but edges and corners only match edges and corners (zero-padded borders).",
    ),
}

#: Padding mode of the patches of each kind ("is" uses no patches).
PADDING: dict[str, str] = {"ls": "constant", "els": "circular", "bbels": "constant"}


def axis_buckets(kind: str, length: int, patch_size: int) -> list[torch.Tensor]:
    """Class buckets of one axis of ``length`` positions (see module docstring)."""
    positions = torch.arange(length, dtype=torch.long)
    if kind == "ls":
        return [positions.view(length, 1)]
    if kind == "els":
        return [positions.view(1, length)]
    if kind == "bbels":
        r = patch_size // 2
        exact = (positions < r) | (positions >= length - r)
        buckets = []
        if bool(exact.any()):
            buckets.append(positions[exact].view(-1, 1))
        if bool((~exact).any()):
            buckets.append(positions[~exact].view(1, -1))
        return buckets
    raise ValueError(f"no position buckets for kind {kind!r}")


@dataclass(frozen=True)
class GroupBucket:
    """Row bucket × column bucket.

    ``row_index`` ``(n_r, 1, s_r, 1)`` and ``col_index`` ``(1, n_c, 1, s_c)`` broadcast to the
    ``(n_r, n_c, s_r, s_c)`` grid of positions: groups ``G = n_r·n_c`` of ``S = s_r·s_c`` positions.
    ``flat`` ``(G, S)`` holds the same positions as ``y * width + x``.
    """

    row_index: torch.Tensor
    col_index: torch.Tensor
    flat: torch.Tensor

    @property
    def groups(self) -> int:
        return self.flat.shape[0]

    @property
    def size(self) -> int:
        return self.flat.shape[1]

    def to(self, device: torch.device) -> GroupBucket:
        return GroupBucket(self.row_index.to(device), self.col_index.to(device), self.flat.to(device))


def group_buckets(kind: str, height: int, width: int, patch_size: int) -> list[GroupBucket]:
    """All group buckets of a ``height``×``width`` image; together they cover every pixel once."""
    result = []
    for rows in axis_buckets(kind, height, patch_size):
        for cols in axis_buckets(kind, width, patch_size):
            n_r, s_r = rows.shape
            n_c, s_c = cols.shape
            row_index = rows.view(n_r, 1, s_r, 1)
            col_index = cols.view(1, n_c, 1, s_c)
            flat = (row_index * width + col_index).reshape(n_r * n_c, s_r * s_c)
            result.append(GroupBucket(row_index, col_index, flat))
    return result
