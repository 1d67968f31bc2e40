"""Whole-image retrieval for the near-copy check: which library images a query may be a copy of.

Each library image has ``len(BOXES)`` whole-image descriptors (unit-length luminance thumbnails of
crops, see :mod:`core.analyzer.nearcopy`), kept as float16 in ``global.npy`` and read through a
memory map: a query touches only the rows it scores. Two ways to find the best images:

* :class:`ExactGlobal` scores every descriptor (matrix products over chunks of images); used for
  small libraries, where it is exact and fast.
* :class:`CompressedGlobal` asks a FAISS ``IVF…,PQ32`` index (inner product, 32 bytes per descriptor)
  for the nearest descriptors, groups them by image and re-scores those few images exactly from
  ``global.npy``; used above ``exact_max_vectors`` descriptors, where a full scan would read every
  descriptor of a large library for each query.

Both return image rows best first, from exact scores, so the verification that follows
(:class:`core.analyzer.nearcopy.NearCopyChecker`) is the same for both.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: images scored per matrix product by the exact scan (512 images × 49 boxes × 256 floats = 25 MB)
_SCAN_IMAGES = 512
#: descriptors added to a FAISS index per call (bounded memory while filling)
_ADD_CHUNK = 65_536
#: k-means and PQ training: this many sampled descriptors per list, at least _MIN_TRAIN in all
_TRAIN_PER_LIST = 50
_MIN_TRAIN = 20_000
#: PQ sub-quantizers (bytes per descriptor); 256 / 32 = 8 dimensions each
_PQ_BYTES = 32
#: nearest descriptors asked per query variant, per image wanted (at least 64)
_NEIGHBOURS_PER_IMAGE = 16
#: nearest descriptors asked per query variant at most (when many boxes of few images come first)
_MAX_NEIGHBOURS = 4_096
#: distinct images re-scored exactly, per image wanted
_RESCORED_PER_IMAGE = 8


def _unit_rows(descriptors: np.ndarray, rows: np.ndarray | list[int]) -> torch.Tensor:
    """Descriptors of some image rows as ``(len(rows), B, D)`` float32 (reads only those rows)."""
    if len(rows) == 0:
        return torch.zeros((0, *descriptors.shape[1:]))
    order = np.argsort(rows)  # memory maps read fastest in file order
    picked = np.asarray(descriptors[np.asarray(rows)[order]], dtype=np.float32)
    out = np.empty_like(picked)
    out[order] = picked
    return torch.from_numpy(out)


class GlobalIndex:
    """Whole-image descriptors ``(N, B, D)`` (float16, may be a memory map) and retrieval over them."""

    kind = "none"

    def __init__(self, descriptors: np.ndarray) -> None:
        if descriptors.ndim != 3:
            raise ValueError("whole-image descriptors must be (images, boxes, dimensions)")
        self.descriptors = descriptors

    @property
    def count(self) -> int:
        """Images described."""
        return int(self.descriptors.shape[0])

    @property
    def boxes(self) -> int:
        return int(self.descriptors.shape[1])

    def box_scores(self, thumbs: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """Exact scores (cosine) of ``thumbs`` (V, D) against every box of ``rows``: ``(V, len(rows), B)``."""
        described = _unit_rows(self.descriptors, rows)
        flat = described.reshape(-1, described.shape[-1])
        return (thumbs @ flat.T).view(thumbs.shape[0], len(rows), self.boxes)

    def retrieve(self, thumbs: torch.Tensor, allowed: np.ndarray | None, k: int) -> list[int]:
        """Up to ``k`` image rows whose best box scores highest against any of ``thumbs``, best first;
        rows where ``allowed`` is False are never returned."""
        raise NotImplementedError

    def extended(self, descriptors: np.ndarray) -> GlobalIndex:
        """This index with more images' descriptors appended (rows follow the existing ones)."""
        raise NotImplementedError

    #: the file of this index besides ``global.npy`` (None: it has none)
    FILE: str | None = None

    def write(self, path: Path) -> None:
        """Write :attr:`FILE` to ``path``."""

    def meta(self) -> dict[str, Any]:
        """The index manifest's entry for this index."""
        return {"kind": self.kind, "count": self.count}


class ExactGlobal(GlobalIndex):
    """Scores every descriptor; exact."""

    kind = "exact"

    def retrieve(self, thumbs: torch.Tensor, allowed: np.ndarray | None, k: int) -> list[int]:
        best = torch.empty(self.count)
        for start in range(0, self.count, _SCAN_IMAGES):
            rows = np.arange(start, min(self.count, start + _SCAN_IMAGES))
            chunk = torch.from_numpy(np.asarray(self.descriptors[start : rows[-1] + 1], dtype=np.float32))
            scores = thumbs @ chunk.reshape(-1, chunk.shape[-1]).T  # (V, n·B)
            best[start : start + len(rows)] = scores.view(thumbs.shape[0], len(rows), self.boxes).amax(dim=(0, 2))
        if allowed is not None:
            best[~torch.from_numpy(np.asarray(allowed, dtype=bool))] = -2.0
        top = torch.topk(best, min(k, self.count))
        return [int(row) for row, score in zip(top.indices.tolist(), top.values.tolist(), strict=True) if score > -2.0]

    def extended(self, descriptors: np.ndarray) -> GlobalIndex:
        return ExactGlobal(_merged(self.descriptors, descriptors))


class CompressedGlobal(GlobalIndex):
    """A FAISS inverted-file index with product quantisation over every box descriptor (id = row·B + box);
    the images it finds are re-scored exactly."""

    kind = "faiss"
    FILE: str | None = "global.faiss"

    def __init__(
        self,
        descriptors: np.ndarray,
        index: Any,
        nprobe: int = 16,
        mapped_from: Path | None = None,
        owner: Any = None,
    ) -> None:  # index: faiss.Index
        super().__init__(descriptors)
        import faiss

        self.index = index
        #: what keeps ``index``'s lists alive when they are stacked from shard files (see ShardedFaissSearch)
        self.owner = owner
        self.nprobe = nprobe
        #: the file whose lists ``index`` reads through a read-only memory map (None: held in memory)
        self.mapped_from = mapped_from
        faiss.extract_index_ivf(index).nprobe = nprobe
        if int(index.ntotal) != self.count * self.boxes:
            raise ValueError(
                f"the whole-image search index holds {index.ntotal} descriptors, expected {self.count * self.boxes}"
            )

    @classmethod
    def build(cls, descriptors: np.ndarray, nprobe: int = 16, seed: int = 0) -> CompressedGlobal:
        built = cls._filled(descriptors, cls.trained(descriptors, seed), 0)
        logger.info("built the whole-image index: %d images", descriptors.shape[0])
        return cls(descriptors, built, nprobe)

    @staticmethod
    def trained(descriptors: np.ndarray, seed: int = 0) -> Any:
        """An empty ``IVF…,PQ32`` index (inner product) trained on a seeded sample of whole images' boxes."""
        import faiss

        count, boxes, dim = descriptors.shape
        total = count * boxes
        nlist = int(min(16_384, max(16, 2 * math.sqrt(total))))
        wanted = min(total, max(_MIN_TRAIN, nlist * _TRAIN_PER_LIST))
        # whole images' boxes, read in file order (``descriptors`` may be memory-mapped shards)
        images = min(count, -(-wanted // boxes))
        rng = np.random.default_rng(seed)
        picked = np.arange(count) if images >= count else np.sort(rng.choice(count, images, replace=False))
        sample = np.ascontiguousarray(np.asarray(descriptors[picked]).reshape(-1, dim), dtype=np.float32)
        nlist = min(nlist, max(1, sample.shape[0] // 39))  # k-means wants ~39 points per list
        pq = _PQ_BYTES if dim % _PQ_BYTES == 0 else 1
        # "np": no polysemous training (it re-orders codes for Hamming filtering, which is not used here,
        # and takes minutes where the quantisers take seconds)
        index = faiss.index_factory(dim, f"IVF{nlist},PQ{pq}np", faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter = 10
        ivf.cp.seed = seed
        index.train(sample)
        logger.info("trained the whole-image index: %d images, %d lists, PQ%d", count, nlist, pq)
        return index

    @staticmethod
    def fill_rows(index: Any, descriptors: np.ndarray, first_row: int) -> Any:
        """``index`` with ``descriptors`` (images ``first_row``…, in memory or mapped) added under their ids
        (row·B + box): one shard's lists of a sharded whole-image index."""
        count, boxes, dim = descriptors.shape
        step = max(1, _ADD_CHUNK // boxes)
        for start in range(0, count, step):
            chunk = np.ascontiguousarray(np.asarray(descriptors[start : start + step]).reshape(-1, dim), np.float32)
            rows = np.arange(first_row + start, first_row + start + chunk.shape[0] // boxes, dtype=np.int64)
            ids = (rows[:, None] * boxes + np.arange(boxes, dtype=np.int64)[None, :]).ravel()
            index.add_with_ids(chunk, ids)
        return index

    @staticmethod
    def _filled(descriptors: np.ndarray, index: Any, first: int) -> Any:
        """``index`` with the descriptors of images ``first``… added (ids follow on: row·B + box)."""
        count, boxes, dim = descriptors.shape
        step = max(1, _ADD_CHUNK // boxes)
        for start in range(first, count, step):
            chunk = np.asarray(descriptors[start : start + step]).reshape(-1, dim)
            index.add(np.ascontiguousarray(chunk, dtype=np.float32))
        return index

    def retrieve(self, thumbs: torch.Tensor, allowed: np.ndarray | None, k: int) -> list[int]:
        wanted = _RESCORED_PER_IMAGE * k
        queries = np.ascontiguousarray(thumbs.numpy(), dtype=np.float32)
        total = self.count * self.boxes
        neighbours = min(total, max(64, _NEIGHBOURS_PER_IMAGE * k))
        while True:
            # an image's boxes are alike, so the nearest descriptors may name only a few images: ask for
            # more until enough distinct allowed images are found (or all were asked for)
            rows = self._distinct_rows(queries, neighbours, allowed, wanted)
            if len(rows) >= wanted or neighbours >= min(total, _MAX_NEIGHBOURS):
                break
            neighbours = min(total, _MAX_NEIGHBOURS, neighbours * 4)
        if not rows:
            return []
        best = self.box_scores(thumbs, rows).amax(dim=(0, 2))
        top = torch.topk(best, min(k, len(rows))).indices.tolist()
        return [rows[i] for i in top]

    def _distinct_rows(
        self, queries: np.ndarray, neighbours: int, allowed: np.ndarray | None, wanted: int
    ) -> list[int]:
        _, ids = self.index.search(queries, neighbours)
        rows: list[int] = []
        seen: set[int] = set()
        for flat_id in ids.T.ravel():  # nearest of every variant first, then the second nearest, ...
            if flat_id < 0:
                continue
            row = int(flat_id) // self.boxes
            if row in seen or (allowed is not None and not allowed[row]):
                continue
            seen.add(row)
            rows.append(row)
            if len(rows) >= wanted:
                break
        return rows

    def extended(self, descriptors: np.ndarray) -> GlobalIndex:
        import faiss

        if self.owner is not None:
            raise ValueError("an index whose lists are stacked from shard files grows by adding a shard's lists")
        # a memory-mapped index is read-only (FAISS aborts the process on an add): read it whole first
        index = self.index if self.mapped_from is None else faiss.read_index(str(self.mapped_from))
        merged = _merged(self.descriptors, descriptors)
        self._filled(merged, index, self.count)
        return CompressedGlobal(merged, index, self.nprobe)

    def write(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "nprobe": self.nprobe}

    @classmethod
    def load(cls, path: Path, descriptors: np.ndarray, nprobe: int = 16) -> CompressedGlobal:
        """Read ``path`` with its lists memory-mapped (read-only: queries touch only the lists they probe)."""

        from core.analyzer.search import read_mapped

        return cls(descriptors, read_mapped(path), nprobe, mapped_from=path)


def make_global_index(descriptors: np.ndarray, exact_max_vectors: int, force: str | None = None) -> GlobalIndex:
    """Exact retrieval while the descriptors are few (``exact_max_vectors``), a compressed index above;
    ``force``: "exact" or "faiss"."""
    if descriptors.dtype != np.float16:
        descriptors = np.asarray(descriptors, dtype=np.float16)
    total = descriptors.shape[0] * descriptors.shape[1]
    kind = force or ("exact" if total <= exact_max_vectors else "faiss")
    if kind == "faiss" and total >= 4 * 256:  # PQ needs a few hundred descriptors to train its codebooks
        return CompressedGlobal.build(descriptors)
    return ExactGlobal(descriptors)


def grown_global_index(
    current: GlobalIndex, descriptors: np.ndarray, exact_max_vectors: int, force: str | None = None
) -> GlobalIndex:
    """``current`` with more images appended; an exact index that grows past ``exact_max_vectors`` becomes a
    compressed one (unless ``force`` says otherwise)."""
    total = (current.count + descriptors.shape[0]) * current.boxes
    if isinstance(current, ExactGlobal) and force is None and total > exact_max_vectors:
        return make_global_index(_merged(current.descriptors, descriptors), exact_max_vectors)
    return current.extended(descriptors)


def _merged(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(old), np.asarray(new).astype(np.float16)])


def load_global_index(directory: Path, meta: dict[str, Any], descriptors: np.ndarray) -> GlobalIndex:
    """The whole-image index saved in ``directory`` (``meta``: its manifest entry, see :meth:`GlobalIndex.meta`).

    Raises ``ValueError`` when its files do not fit together."""
    if meta.get("kind") == CompressedGlobal.kind:
        try:
            return CompressedGlobal.load(directory / str(CompressedGlobal.FILE), descriptors, int(meta["nprobe"]))
        except (RuntimeError, KeyError, TypeError) as exc:
            raise ValueError(f"the whole-image search index could not be read ({exc})") from exc
    return ExactGlobal(descriptors)
