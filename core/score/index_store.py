"""Patch indexes of the approximate mode (:mod:`core.score.ivf`) kept on disk between runs.

Building the index of a library takes seconds to minutes (k-means per class and patch size); an
:class:`IndexStore` keeps each one as a safetensors file, so a restarted studio or a new command-line
run reuses it. One file per (library content, kind, patch size, index settings):
``<directory>/<key>.safetensors``. Files are written atomically, carry a SHA-256 of their tensors
and are checked on load (checksum, then every index against the library's bounds, since the native
kernel trusts them); a damaged or stale file is deleted and the index rebuilt. The least recently
used files are removed when the folder grows past ``max_bytes``. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from core.score import ivf

logger = logging.getLogger(__name__)

#: Version of the file layout (bump when it or the meaning of an index changes).
FORMAT = "1"
SUFFIX = ".safetensors"


def settings() -> str:
    """The index settings a stored index was built with (part of its file name)."""
    return (
        f"f{FORMAT}-l{ivf.LIST_SIZE}-m{ivf.MAX_LISTS}-i{ivf.KMEANS_ITERATIONS}-s{ivf.KMEANS_SAMPLE}"
        f"-c{ivf.SINGLES_MAX_PATCH}"
    )


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class IndexDamagedError(Exception):
    """A stored index that cannot be trusted; the message says why."""


class IndexStore:
    """A folder of stored patch indexes (see module doc)."""

    def __init__(self, directory: Path, max_bytes: int = 1 << 30) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def path(self, key: str, kind: str, patch_size: int) -> Path:
        name = hashlib.blake2b(f"{key}|{kind}|{patch_size}|{settings()}".encode(), digest_size=16).hexdigest()
        return self.directory / f"{kind}-{patch_size}-{name}{SUFFIX}"

    def has(self, key: str, kind: str, patch_size: int) -> bool:
        """Whether a stored file exists for this index (it is checked only when loaded)."""
        return self.path(key, kind, patch_size).is_file()

    def load(self, library: torch.Tensor, key: str, kind: str, patch_size: int) -> ivf.PatchIndex | None:
        """The stored index of ``library`` (content hash ``key``), or None if there is none usable."""
        path = self.path(key, kind, patch_size)
        if not path.is_file():
            return None
        try:
            index = self._read(path, library, kind, patch_size)
        except IndexDamagedError as exc:
            logger.warning("stored patch index %s is unusable (%s); rebuilding it", path.name, exc)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # most recently used
        return index

    def save(self, key: str, index: ivf.PatchIndex) -> None:
        """Store ``index`` (atomically), then trim the folder to ``max_bytes``. A full or read-only disk
        only costs the rebuild next time (logged)."""
        path = self.path(key, index.kind, index.patch_size)
        tensors = {
            "image": index.image.to(torch.int32),
            "y": index.y.to(torch.int32),
            "x": index.x.to(torch.int32),
            "list_block": index.list_block,
            "list_cols": index.list_cols,
            "list_window": index.list_window,
            "windows": torch.tensor(index.windows, dtype=torch.long).view(-1, 4),
            "class_lists": torch.tensor(index.class_lists, dtype=torch.long),
        }
        for i, (flat, centroids) in enumerate(index.classes):
            tensors[f"flat.{i}"] = flat
            tensors[f"centroids.{i}"] = centroids
        tensors = {name: t.contiguous() for name, t in tensors.items()}
        metadata = {
            "format": FORMAT,
            "kind": index.kind,
            "patch_size": str(index.patch_size),
            "exact": "1" if index.exact else "0",
            "classes": str(len(index.classes)),
            "sha256": _digest(tensors),
        }
        staging = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            save_file(tensors, str(staging), metadata=metadata)
            os.replace(staging, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                staging.unlink(missing_ok=True)
            logger.warning("could not store the patch index in %s (%s)", self.directory, exc)
            return
        self._trim(keep=path)

    def _trim(self, keep: Path) -> None:
        files = []
        for item in self.directory.glob(f"*{SUFFIX}"):
            try:
                stat = item.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, item))
        total = sum(size for _, size, _ in files)
        for _, size, item in sorted(files):
            if total <= self.max_bytes:
                break
            if item == keep:
                continue
            item.unlink(missing_ok=True)
            total -= size

    def _read(self, path: Path, library: torch.Tensor, kind: str, patch_size: int) -> ivf.PatchIndex:
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except (OSError, SafetensorError, ValueError, RuntimeError) as exc:
            raise IndexDamagedError(f"unreadable: {exc}") from exc
        if metadata.get("format") != FORMAT or metadata.get("kind") != kind:
            raise IndexDamagedError("made by another version")
        if metadata.get("patch_size") != str(patch_size):
            raise IndexDamagedError("made for another patch size")
        if metadata.get("sha256") != _digest(tensors):
            raise IndexDamagedError("checksum mismatch")
        try:
            count = int(metadata["classes"])
            classes = [(tensors[f"flat.{i}"], tensors[f"centroids.{i}"]) for i in range(count)]
            image, y, x = (tensors[name].long() for name in ("image", "y", "x"))
            list_block, list_cols, list_window = tensors["list_block"], tensors["list_cols"], tensors["list_window"]
            windows = [tuple(int(v) for v in row) for row in tensors["windows"].tolist()]
            class_lists = tensors["class_lists"].tolist()
        except (KeyError, ValueError) as exc:
            raise IndexDamagedError(f"incomplete: {exc}") from exc
        _check(library, patch_size, classes, class_lists, windows, image, y, x, list_block, list_cols, list_window)
        values = ivf.centre_values(library, image, y, x)
        return ivf.PatchIndex(
            kind, patch_size, classes, class_lists, windows, list_block, list_cols, list_window,
            image.contiguous(), y.contiguous(), x.contiguous(), values.contiguous(), metadata.get("exact") == "1",
        )


def _check(
    library: torch.Tensor,
    patch_size: int,
    classes: list[tuple[torch.Tensor, torch.Tensor]],
    class_lists: list[int],
    windows: list[tuple[int, ...]],
    image: torch.Tensor,
    y: torch.Tensor,
    x: torch.Tensor,
    list_block: torch.Tensor,
    list_cols: torch.Tensor,
    list_window: torch.Tensor,
) -> None:
    """Every index in bounds and every shape consistent (the kernel reads memory at these indexes)."""
    count, channels, height, width = library.shape
    lists = sum(c.shape[0] for _, c in classes)
    columns = image.numel()
    problems = []
    if len(windows) != len(classes) or len(class_lists) != len(classes):
        problems.append("class tables differ in length")
    if not (columns % 16 == 0 and y.numel() == columns and x.numel() == columns):
        problems.append("column tables differ in length")
    if not (list_block.numel() == lists and list_cols.numel() == lists and list_window.shape == (lists, 4)):
        problems.append("list tables differ in length")
    if problems:
        raise IndexDamagedError(", ".join(problems))
    real = image >= 0
    if bool((image >= count).any() or (image < -1).any()):
        problems.append("library image out of range")
    if bool(((y < 0) | (y >= height) | (x < 0) | (x >= width))[real].any()):
        problems.append("patch position out of range")
    if bool((list_cols < 0).any() or (list_block < 0).any() or (list_block * 16 + list_cols > columns).any()):
        problems.append("list outside the columns")
    w = list_window
    if bool((w < 0).any() or (w[:, 0] + w[:, 1] > patch_size).any() or (w[:, 2] + w[:, 3] > patch_size).any()):
        problems.append("window outside the patch")
    for (flat, centroids), window in zip(classes, windows, strict=True):
        d = channels * window[1] * window[3]
        if centroids.dtype != torch.float32 or flat.dtype != torch.long or centroids.dim() != 2:
            problems.append("class table of the wrong type")
            break
        if centroids.shape[1] != d or bool(((flat < 0) | (flat >= height * width)).any()):
            problems.append("class table out of range")
            break
    if problems:
        raise IndexDamagedError(", ".join(problems))
