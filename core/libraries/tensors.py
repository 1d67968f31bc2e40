"""Library images as fixed-size uint8 arrays, cached on disk as ``.npy`` per working size."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)


def square_array(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """Centre-crop ``image`` to a square, resize it (antialiased) to ``size``, return ``(C, S, S)`` uint8."""
    image = image.convert("L" if channels == 1 else "RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    if side != size:
        resample = Image.Resampling.LANCZOS if side > size else Image.Resampling.BICUBIC
        image = image.resize((size, size), resample, box=box)
    elif (width, height) != (side, side):
        image = image.crop(box)
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


class TensorCache:
    """``.npy`` files of a library's images at one (size, channels), keyed by the manifest revision."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def path(self, size: int, channels: int, revision: str) -> Path:
        return self.cache_dir / f"{size}px-{channels}ch-{revision}.npy"

    def get(self, size: int, channels: int, revision: str, count: int, mmap: bool = False) -> np.ndarray | None:
        """The cached array (``mmap``: a read-only memory map), or None when missing, stale or damaged."""
        path = self.path(size, channels, revision)
        if not path.is_file():
            return None
        try:
            array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as exc:
            logger.warning("ignoring damaged tensor cache %s: %s", path, exc)
            return None
        if array.dtype != np.uint8 or array.shape != (count, channels, size, size):
            logger.warning("ignoring tensor cache %s with unexpected shape %s", path, array.shape)
            return None
        return array

    def fill(
        self, rows: Iterator[np.ndarray], count: int, size: int, channels: int, revision: str
    ) -> np.ndarray:
        """Write ``count`` rows of ``(channels, size, size)`` uint8 to the cache file as they come (never the
        whole array in memory), then return it as a read-only memory map.

        Raises ``OSError`` when the file cannot be written (a full disk): plain writes, so a full disk is
        an error, not a crash of a memory map."""
        path = self.path(size, channels, revision)
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
            "fortran_order": False,
            "shape": (count, channels, size, size),
        }
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cache.", suffix=".npy.tmp", dir=self.cache_dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.lib.format.write_array_header_1_0(handle, header)
                filled = 0
                for filled, row in enumerate(rows, start=1):
                    if row.shape != (channels, size, size) or row.dtype != np.uint8:
                        raise ValueError(f"picture {filled} has the shape {row.shape}, not {(channels, size, size)}")
                    handle.write(np.ascontiguousarray(row).tobytes())
                if filled != count:
                    raise ValueError(f"expected {count} pictures, read {filled}")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return np.load(path, allow_pickle=False, mmap_mode="r")

    def remove_partial(self) -> None:
        """Delete temporary files of writes that never finished (a process killed in :meth:`put`).

        Call it only while holding the library's lock, so no :meth:`put` is in progress.
        """
        if not self.cache_dir.is_dir():
            return
        for path in self.cache_dir.glob(".cache.*.npy.tmp"):
            logger.info("removing unfinished tensor cache %s", path)
            path.unlink(missing_ok=True)

    def clear(self, keep_revision: str | None = None) -> None:
        """Delete cache files (all, or all but those of ``keep_revision``)."""
        if not self.cache_dir.is_dir():
            return
        for path in self.cache_dir.glob("*.npy"):
            if keep_revision is not None and path.stem.endswith(f"-{keep_revision}"):
                continue
            try:
                path.unlink()
            except OSError as exc:
                logger.warning("could not delete stale cache %s: %s", path, exc)
