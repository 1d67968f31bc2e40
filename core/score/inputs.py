"""Checks of the tensors and settings given to the machines, with messages for the user."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from core.errors import BadInputError
from core.score.kinds import MACHINE_KINDS


def check_kind(kind: str) -> None:
    if kind not in MACHINE_KINDS:
        raise BadInputError(f"Unknown machine kind {kind!r}. Valid kinds: {', '.join(MACHINE_KINDS)}.")


def check_library(library: torch.Tensor) -> None:
    if not isinstance(library, torch.Tensor) or library.dim() != 4:
        shape = tuple(library.shape) if isinstance(library, torch.Tensor) else type(library).__name__
        raise BadInputError(f"The library must be a tensor of images (N, C, H, W); got {shape}.")
    if library.shape[0] == 0:
        raise BadInputError("The library is empty: add at least one image.")
    if min(library.shape[1:]) < 1:
        raise BadInputError(f"The library images have an empty dimension: {tuple(library.shape)}.")


def check_images(x: torch.Tensor, library: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise BadInputError(f"The {what} must be a tensor (B, C, H, W).")
    if x.shape[0] == 0:
        raise BadInputError(f"The {what} batch is empty.")
    if tuple(x.shape[1:]) != tuple(library.shape[1:]):
        raise BadInputError(
            f"The {what} has shape (C, H, W) = {tuple(x.shape[1:])} but the library images are "
            f"{tuple(library.shape[1:])}; they must match."
        )


def check_patch_size(patch_size: int, kind: str, height: int, width: int) -> None:
    if kind == "is":
        return
    if isinstance(patch_size, bool) or not isinstance(patch_size, int):
        raise BadInputError(f"Patch sizes must be whole numbers (got {patch_size!r}).")
    if patch_size < 1 or patch_size % 2 == 0:
        raise BadInputError(f"Patch sizes must be odd and at least 1 (got {patch_size}).")
    largest = 2 * (min(height, width) if kind == "els" else max(height, width)) - 1
    if patch_size > largest:
        raise BadInputError(
            f"Patch size {patch_size} is larger than {largest}, the size that already covers the "
            f"whole {height}×{width} image from any pixel."
        )


def check_patch_sizes(patch_sizes: Sequence[int], kind: str, height: int, width: int) -> list[int]:
    sizes = list(patch_sizes)
    if not sizes:
        raise BadInputError("The patch-size schedule is empty: give one patch size per step.")
    for size in sizes:
        check_patch_size(size, kind, height, width)
    return sizes


def check_alpha_bar(alpha_bar: float) -> None:
    if not 0.0 < float(alpha_bar) < 1.0:
        raise BadInputError(f"alpha_bar must be strictly between 0 and 1 (got {alpha_bar}).")


def check_labels(labels: torch.Tensor | None, class_labels: torch.Tensor | None, num_library: int, batch: int) -> None:
    """Class-conditional sampling needs library ``labels`` (N,) and one present label per sample."""
    if class_labels is None:
        if labels is not None and (labels.dim() != 1 or labels.shape[0] != num_library):
            raise BadInputError(f"labels must have one entry per library image ({num_library}).")
        return
    if labels is None:
        raise BadInputError("Class-conditional generation needs a label for every library image.")
    if labels.dim() != 1 or labels.shape[0] != num_library:
        raise BadInputError(
            f"labels must have one entry per library image: expected {num_library}, got {tuple(labels.shape)}."
        )
    if class_labels.dim() != 1 or class_labels.shape[0] != batch:
        raise BadInputError(
            f"class_labels must have one entry per sample: expected {batch}, got {tuple(class_labels.shape)}."
        )
    present = set(labels.tolist())
    for label in class_labels.tolist():
        if label not in present:
            raise BadInputError(f"Class label {label} has no library image; labels present: {sorted(present)}.")
