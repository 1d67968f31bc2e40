"""Arrays kept on disk in shards (one ``.npy`` per shard, usually memory-mapped) read as one array.

A prepared library's pictures, whole-image descriptors and patch positions are written a shard of
pictures at a time (see :mod:`core.analyzer.index`); :class:`ShardedArray` lets the analyzer index
them by row as if they were one array, reading only the rows it asks for. Adding pictures adds a
shard: the files already written are never rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class ShardedArray:
    """Rows of several arrays with the same trailing shape and type, end to end."""

    def __init__(self, parts: Sequence[np.ndarray]) -> None:
        if not parts:
            raise ValueError("a sharded array needs at least one part")
        first = parts[0]
        for part in parts[1:]:
            if part.shape[1:] != first.shape[1:] or part.dtype != first.dtype:
                raise ValueError("the shards of an array must have the same row shape and type")
        self.parts = list(parts)
        # plain views for reading rows: indexing a np.memmap itself costs more than the rows it copies
        self._plain = [part.view(np.ndarray) if isinstance(part, np.memmap) else part for part in self.parts]
        counts = np.array([part.shape[0] for part in self.parts], dtype=np.int64)
        #: the first row of each part, and the total at the end
        self.offsets = np.concatenate([[0], np.cumsum(counts)])

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.offsets[-1]), *self.parts[0].shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.parts[0].dtype

    @property
    def ndim(self) -> int:
        return self.parts[0].ndim

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = np.concatenate([np.asarray(part) for part in self.parts])
        return whole if dtype is None else whole.astype(dtype)

    def _locate(self, row: int) -> tuple[int, int]:
        count = len(self)
        if row < 0:
            row += count
        if not 0 <= row < count:
            raise IndexError(f"row {row} is outside an array of {count} rows")
        part = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return part, row - int(self.offsets[part])

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            part, row = self._locate(int(key))
            return self.parts[part][row]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            pieces = []
            for i, part in enumerate(self.parts):
                lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
                if hi <= start or lo >= stop:
                    continue
                pieces.append(part[max(start, lo) - lo : min(stop, hi) - lo])
            if not pieces:
                return np.empty((0, *self.shape[1:]), dtype=self.dtype)
            return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        rows = np.asarray(key)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64, copy=False)
        flat = rows.ravel()
        count = len(self)
        flat = np.where(flat < 0, flat + count, flat)
        if flat.size and (flat.min() < 0 or flat.max() >= count):
            raise IndexError(f"a row is outside an array of {count} rows")
        out = np.empty((flat.size, *self.shape[1:]), dtype=self.dtype)
        which = np.searchsorted(self.offsets, flat, side="right") - 1
        if len(self.parts) == 1 or (flat.size and which.min() == which.max()):
            part = int(which[0]) if flat.size else 0
            out[:] = self._plain[part][flat - int(self.offsets[part])]
            return out.reshape((*rows.shape, *self.shape[1:]))
        order = np.argsort(which, kind="stable")  # rows grouped by part, each part read once
        bounds = np.searchsorted(which[order], np.arange(len(self.parts) + 1))
        for part in range(len(self.parts)):
            lo, hi = bounds[part], bounds[part + 1]
            if hi > lo:
                picked = order[lo:hi]
                out[picked] = self._plain[part][flat[picked] - int(self.offsets[part])]
        return out.reshape((*rows.shape, *self.shape[1:]))
