"""Nearest-neighbour search over patch descriptors: exact (torch matmul) or FAISS IVF.

Both return squared L2 distances and row numbers, best first. Both persist without pickle:
exact as ``.npy`` (``allow_pickle=False``), FAISS with ``faiss.write_index``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

_QUERY_CHUNK = 2048


class ExactSearch:
    """Brute force with matrix products; exact, best for up to ~150k vectors."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._tensor = torch.from_numpy(self.vectors)
        self._norms = (self._tensor * self._tensor).sum(dim=1)

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    def add(self, vectors: np.ndarray) -> ExactSearch:
        return ExactSearch(np.concatenate([self.vectors, vectors.astype(np.float32)]))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.count)
        q_all = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
        dists, rows = [], []
        for start in range(0, q_all.shape[0], _QUERY_CHUNK):
            q = q_all[start : start + _QUERY_CHUNK]
            d = torch.addmm(self._norms[None, :], q, self._tensor.T, beta=1.0, alpha=-2.0)
            value, index = torch.topk(d, k, dim=1, largest=False, sorted=True)
            dists.append((value + (q * q).sum(dim=1, keepdim=True)).clamp_min_(0.0))
            rows.append(index)
        if not dists:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return torch.cat(dists).numpy(), torch.cat(rows).numpy()

    def save(self, path: Path) -> None:
        with open(path, "wb") as handle:
            np.save(handle, self.vectors, allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> ExactSearch:
        return cls(np.load(path, allow_pickle=False))


class FaissSearch:
    """FAISS ``IndexIVFFlat`` (L2): approximate, fast for millions of vectors."""

    kind = "faiss"

    def __init__(self, index, nprobe: int = 12) -> None:  # noqa: ANN001 - faiss.Index
        import faiss

        self.index = index
        self.nprobe = nprobe
        faiss.extract_index_ivf(index).nprobe = nprobe

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def build(cls, vectors: np.ndarray, nprobe: int = 12, seed: int = 0) -> FaissSearch:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        count, dim = vectors.shape
        nlist = int(min(4096, max(16, 4 * math.sqrt(count))))
        nlist = min(nlist, max(1, count // 39))
        quantizer = faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_L2)
        rng = np.random.default_rng(seed)
        sample = vectors if count <= nlist * 64 else vectors[rng.choice(count, nlist * 64, replace=False)]
        index.train(sample)
        index.add(vectors)
        logger.info("built FAISS IVF index: %d vectors, dim %d, %d lists", count, dim, nlist)
        return cls(index, nprobe)

    def add(self, vectors: np.ndarray) -> FaissSearch:
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.count)
        dist, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return dist, rows.astype(np.int64)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, nprobe: int = 12) -> FaissSearch:
        import faiss

        return cls(faiss.read_index(str(path)), nprobe)


Searcher = ExactSearch | FaissSearch


def make_searcher(vectors: np.ndarray, exact_max: int, nprobe: int, force: str | None = None) -> Searcher:
    """Exact search for small sets, FAISS above ``exact_max`` vectors (``force``: "exact"/"faiss")."""
    kind = force or ("exact" if vectors.shape[0] <= exact_max else "faiss")
    if kind == "faiss" and vectors.shape[0] >= 64:
        return FaissSearch.build(vectors, nprobe)
    return ExactSearch(vectors)
