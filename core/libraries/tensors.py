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

    def ids_path(self, size: int, channels: int, revision: str) -> Path:
        """The item ids of a cache file's rows, one per line (what lets a later revision reuse its rows)."""
        return self.path(size, channels, revision).with_suffix(".ids")

    def base(self, size: int, channels: int, revision: str) -> tuple[np.ndarray, dict[str, int]] | None:
        """The newest cache of another revision at this size, as a memory map and ``{item id: row}``: the rows
        of items still in the library are copied from it instead of decoding their pictures again."""
        candidates = []
        for path in self.cache_dir.glob(f"{size}px-{channels}ch-*.npy"):
            if path.stem.endswith(f"-{revision}"):
                continue
            try:
                candidates.append((path.stat().st_mtime_ns, path))
            except OSError:
                continue
        for _, path in sorted(candidates, reverse=True):
            try:
                ids = path.with_suffix(".ids").read_text(encoding="utf-8").split("\n")[:-1]
                array = np.load(path, allow_pickle=False, mmap_mode="r")
            except (OSError, ValueError):
                continue
            if array.dtype == np.uint8 and array.shape == (len(ids), channels, size, size):
                return array, {item_id: row for row, item_id in enumerate(ids)}
        return None

    def fill(
        self,
        rows: Iterator[np.ndarray],
        count: int,
        size: int,
        channels: int,
        revision: str,
        ids: list[str] | None = None,
    ) -> np.ndarray:
        """Write ``count`` rows of ``(channels, size, size)`` uint8 to the cache file as they come (never the
        whole array in memory), then return it as a read-only memory map.

        Raises ``OSError`` when the file cannot be written (a full disk): plain writes, so a full disk is
        an error, not a crash of a memory map. ``ids`` (the rows' item ids) are noted beside it, so the next
        revision can reuse its rows (:meth:`base`); caches of other revisions at this size are then removed."""
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
            if ids is not None:
                ids_tmp = Path(tmp).with_suffix(".ids.tmp")
                ids_tmp.write_text("".join(f"{item_id}\n" for item_id in ids), encoding="utf-8")
                os.replace(ids_tmp, self.ids_path(size, channels, revision))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            Path(tmp).with_suffix(".ids.tmp").unlink(missing_ok=True)
            raise
        for other in self.cache_dir.glob(f"{size}px-{channels}ch-*"):
            if other.suffix in (".npy", ".ids") and other.stem != path.stem:
                other.unlink(missing_ok=True)  # readers that mapped it keep reading it
        return np.load(path, allow_pickle=False, mmap_mode="r")

    def remove_partial(self) -> None:
        """Delete temporary files of writes that never finished (a process killed in :meth:`put`).

        Call it only while holding the library's lock, so no :meth:`put` is in progress.
        """
        if not self.cache_dir.is_dir():
            return
        for path in [*self.cache_dir.glob(".cache.*.npy.tmp"), *self.cache_dir.glob(".cache.*.ids.tmp")]:
            logger.info("removing unfinished tensor cache %s", path)
            path.unlink(missing_ok=True)

    def clear(self, keep_revision: str | None = None, keep_bases: bool = False) -> None:
        """Delete cache files (all, or all but those of ``keep_revision``). ``keep_bases``: also keep, per size,
        the newest cache with noted ids, whose rows the next revision reuses (see :meth:`base`)."""
        if not self.cache_dir.is_dir():
            return
        kept: set[str] = set()
        if keep_bases:
            newest: dict[str, tuple[int, str]] = {}
            for path in self.cache_dir.glob("*.npy"):
                if not path.with_suffix(".ids").is_file():
                    continue
                size_key = path.stem.rsplit("-", 1)[0]
                try:
                    stamp = path.stat().st_mtime_ns
                except OSError:
                    continue
                if size_key not in newest or stamp > newest[size_key][0]:
                    newest[size_key] = (stamp, path.stem)
            kept = {stem for _, stem in newest.values()}
        for path in [*self.cache_dir.glob("*.npy"), *self.cache_dir.glob("*.ids")]:
            if (keep_revision is not None and path.stem.endswith(f"-{keep_revision}")) or path.stem in kept:
                continue
            try:
                path.unlink()
            except OSError as exc:
                logger.warning("could not delete stale cache %s: %s", path, exc)
