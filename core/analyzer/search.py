"""Nearest-neighbour search over patch descriptors: exact (the native kernel, or torch matmul) or FAISS IVF.

Both return squared L2 distances and row numbers, best first. Both persist without pickle:
exact as ``.npy`` (``allow_pickle=False``), FAISS with ``faiss.write_index``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.score import native

logger = logging.getLogger(__name__)

_QUERY_CHUNK = 256
_BUFFER_FLOATS = 16 * 1024 * 1024  # distance buffer of exact search: 64 MiB at most
#: IVF training: k-means on this many sampled vectors per list, for this many iterations (the lists only
#: need to partition the data roughly; ``nprobe`` lists are searched exhaustively)
_TRAIN_PER_LIST = 40
_TRAIN_ITERATIONS = 10
#: FAISS indexes hold vectors padded with zeros to a multiple of this many dimensions: its scanners of
#: compressed lists use SIMD only then (a 19-dimensional SQ8 list scans 4-5× slower than a 24-dimensional
#: one); zeros change no distance
SIMD_DIMS = 8


def padded_dim(dim: int) -> int:
    """The dimension a FAISS index of ``dim``-dimensional descriptors is built with (:data:`SIMD_DIMS`)."""
    return -(-dim // SIMD_DIMS) * SIMD_DIMS


def for_faiss(vectors: np.ndarray, dim: int) -> np.ndarray:
    """``vectors`` as contiguous float32 rows of ``dim`` columns, padded with zeros (an index built before
    padding has ``dim`` equal to the descriptors' own: nothing is added)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] > dim:
        raise ValueError(f"descriptors of shape {vectors.shape} do not fit a {dim}-dimensional search index")
    if vectors.shape[1] < dim:
        vectors = np.pad(vectors, ((0, 0), (0, dim - vectors.shape[1])))
    return np.ascontiguousarray(vectors)


class ExactSearch:
    """Brute force with matrix products; exact, best for up to ~150k vectors."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._tensor = torch.from_numpy(self.vectors)
        self._norms = (self._tensor * self._tensor).sum(dim=1)
        self._panel: torch.Tensor | None = None  # the vectors as the native kernel reads them, made at first use

    def _native(self, k: int) -> bool:
        """Whether the native kernel searches (the PyTorch path otherwise, same neighbours)."""
        return (
            native.kernel() is not None and k <= native.knn_max_k() and self.vectors.shape[1] <= native.FUSED_MAX_DIM
        )

    @property
    def count(self) -> int:
        return int(self.vectors.shape[0])

    def add(self, vectors: np.ndarray) -> ExactSearch:
        return ExactSearch(np.concatenate([self.vectors, vectors.astype(np.float32)]))

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of each query (``nprobe``: ignored, the search is exhaustive)."""
        k = min(k, self.count)
        q_all = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
        count = q_all.shape[0]
        if count and k and self._native(k):
            # distances and the top-k in one pass of the native kernel (about 4-8x the matmul and top-k
            # below: the (queries x library) distances are never written out)
            if self._panel is None:
                self._panel = native.panel(self._tensor[None])[0]
            dists, rows = native.knn(q_all, self._panel, self._norms, self.count, k)
            return dists.numpy(), rows.numpy()
        dists = torch.empty(count, k)
        rows = torch.empty(count, k, dtype=torch.int64)
        if count == 0 or k == 0:
            return dists.numpy(), rows.numpy()
        # query chunks share one reused distance buffer: no fresh memory pages per chunk, and for small
        # libraries the block is still in cache when the top-k reads what the product wrote
        chunk = max(8, min(_QUERY_CHUNK, _BUFFER_FLOATS // self.count))
        buffer = torch.empty(min(chunk, count), self.count)
        for start in range(0, count, chunk):
            q = q_all[start : start + chunk]
            block = buffer[: q.shape[0]]
            torch.addmm(self._norms[None, :], q, self._tensor.T, beta=1.0, alpha=-2.0, out=block)
            torch.topk(block, k, dim=1, largest=False, sorted=True, out=(dists[start : start + q.shape[0]],
                                                                       rows[start : start + q.shape[0]]))
        dists.add_((q_all * q_all).sum(dim=1, keepdim=True)).clamp_min_(0.0)
        return dists.numpy(), rows.numpy()

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
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        count = vectors.shape[0]
        rows = training_rows(count, seed)
        index = trained_ivf(vectors if rows is None else vectors[rows], count)
        index.add(for_faiss(vectors, index.d))
        logger.info("built FAISS IVF index: %d vectors, dim %d, %d lists", count, vectors.shape[1], index.nlist)
        return cls(index, nprobe)

    def add(self, vectors: np.ndarray) -> FaissSearch:
        self.index.add(for_faiss(vectors, self.index.d))
        return self

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of each query, probing ``nprobe`` lists (default: the index's)."""
        k = min(k, self.count)
        dist, rows = self.index.search(for_faiss(queries, self.index.d), k, params=_probing(nprobe))
        return dist, rows.astype(np.int64)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, nprobe: int = 12) -> FaissSearch:
        import faiss

        return cls(faiss.read_index(str(path)), nprobe)


def _lists_for(count: int) -> int:
    nlist = int(min(16384, max(16, 2 * math.sqrt(count))))
    return min(nlist, max(1, count // _TRAIN_PER_LIST))


def training_rows(count: int, seed: int = 0) -> np.ndarray | None:
    """The rows (sorted) of ``count`` vectors to train an IVF index on; None: all of them."""
    wanted = _lists_for(count) * _TRAIN_PER_LIST
    if count <= wanted:
        return None
    return np.sort(np.random.default_rng(seed).choice(count, wanted, replace=False))


def trained_ivf(sample: np.ndarray, count: int):  # noqa: ANN201 - faiss.IndexIVFFlat
    """An empty ``IndexIVFFlat`` (L2) for ``count`` vectors, its lists trained on ``sample``; its dimension is
    the descriptors' padded to :func:`padded_dim`."""
    import faiss

    dim = padded_dim(sample.shape[1])
    sample = for_faiss(sample, dim)
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, _lists_for(count), faiss.METRIC_L2)
    index.cp.niter = _TRAIN_ITERATIONS
    index.cp.min_points_per_centroid = 1  # the sample is deliberately small
    index.train(sample)
    return index  # the wrapper keeps the quantizer referenced


#: madvise(2): fault in every page of a mapping, reading (Linux 5.14+)
_MADV_POPULATE_READ = 22
#: how a large searcher's lists may store its vectors, smallest first (bytes a vector: d, 2·d, 4·d)
ENCODINGS = ("SQ8", "SQfp16", "Flat")
#: searchers with fewer vectors keep plain lists (compression saves little there)
COMPRESS_FROM = 50_000
#: a compressed searcher asks its lists for this many times the neighbours wanted, then re-ranks them exactly
RERANK = 4
#: a compressed encoding is chosen when its recall is at most this much below plain lists'
RECALL_MARGIN = 0.01


@dataclass
class Recipe:
    """How a large searcher is stored: its list encoding and the recalls measured when it was chosen."""

    encoding: str
    recall: dict[str, float]


def _encoded(flat, encoding: str):  # noqa: ANN001, ANN202 - faiss indexes
    """An empty IVF index with ``flat``'s trained coarse quantizer and lists stored as ``encoding``."""
    import faiss

    if encoding == "Flat":
        return flat
    quantizer = faiss.clone_index(flat.quantizer)
    kinds = {"SQ8": faiss.ScalarQuantizer.QT_8bit, "SQfp16": faiss.ScalarQuantizer.QT_fp16}
    return faiss.IndexIVFScalarQuantizer(quantizer, flat.d, flat.nlist, kinds[encoding], faiss.METRIC_L2)


def choose_recipe(
    sample: np.ndarray, queries: np.ndarray, count: int, k: int, nprobe: int
):  # noqa: ANN201 - (faiss index, Recipe)
    """Train the searcher's lists on ``sample`` and choose how they store vectors: the smallest encoding
    whose recall@``k`` (after the exact re-ranking the searcher does) on ``queries`` against an exact search
    of ``sample`` is within :data:`RECALL_MARGIN` of plain lists'. Below :data:`COMPRESS_FROM` vectors the
    lists stay plain. Returns the empty trained index and the recipe."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    flat = trained_ivf(sample, count)
    if count < COMPRESS_FROM or queries.shape[0] == 0:
        return flat, Recipe("Flat", {})
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, sample.shape[0])
    _, truth = ExactSearch(sample).search(queries, k)
    padded_sample, padded_queries = for_faiss(sample, flat.d), for_faiss(queries, flat.d)
    recall: dict[str, float] = {}
    trained: dict[str, object] = {}
    for encoding in reversed(ENCODINGS):  # plain first: the others are measured against it
        index = _encoded(flat, encoding)
        if encoding != "Flat":
            index.train(padded_sample)  # the coarse quantizer is trained already: only the codes are
        filled = _copy(index)
        filled.add(padded_sample)
        filled.nprobe = nprobe
        fetch = k if encoding == "Flat" else min(sample.shape[0], RERANK * k)
        _, found = filled.search(padded_queries, fetch)
        if encoding != "Flat":
            found = _reranked(queries, found, sample, k)[1]
        hits = sum(len(set(found[i, :k].tolist()) & set(truth[i].tolist())) for i in range(queries.shape[0]))
        recall[encoding] = round(hits / (queries.shape[0] * k), 4)
        trained[encoding] = index
    for encoding in ENCODINGS:
        if recall[encoding] >= recall["Flat"] - RECALL_MARGIN:
            logger.info("search lists stored as %s (recall %s)", encoding, recall)
            return trained[encoding], Recipe(encoding, recall)
    return flat, Recipe("Flat", recall)  # pragma: no cover - Flat always qualifies


def read_mapped(path: Path):  # noqa: ANN201 - faiss.Index
    """A FAISS IVF index read with its lists memory-mapped, read-only, and without prefetch threads.

    FAISS reads mapped lists as ``OnDiskInvertedLists``, which start ``prefetch_nthread`` (32) threads on
    every search and keep the finished ones until the next: with one file per shard, a 100,000-picture
    library (49 shards, 40 searchers) made 1,568 threads per search and ran out of memory maps (65,530) in
    one analysis. The lists are in the page cache or read on demand through the map: no prefetch needed.

    An index whose lists were merged into a ``.ivfdata`` file (:func:`merge_lists`) finds it beside itself
    (``IO_FLAG_ONDISK_SAME_DIR``: the data folder may have moved)."""
    import faiss

    flags = faiss.IO_FLAG_READ_ONLY
    if path.with_suffix(".ivfdata").is_file():
        flags |= faiss.IO_FLAG_ONDISK_SAME_DIR  # mapped by nature (with IO_FLAG_MMAP too, FAISS 1.15 crashes)
    else:
        flags |= faiss.IO_FLAG_MMAP
    with _native_stdout_to_log():  # FAISS prints where it found the merged lists
        index = faiss.read_index(str(path), flags)
    try:
        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    except RuntimeError:  # not an IVF index: nothing to tune
        return index
    if hasattr(lists, "prefetch_nthread"):
        lists.prefetch_nthread = 0
    return index


def merge_lists(trained: Path, lists: list[Path], output: Path) -> None:
    """Merge the filled list files ``lists`` (one per shard, same trained index) into one index file
    ``output`` whose lists are stored, list by list, in ``output`` with the suffix ``.ivfdata``: a search
    then reads each probed list in one piece instead of copying it from every shard's file (2x faster at 49
    shards, ``benchmarks/bench_search_lists.py``). Vectors keep their ids."""
    import faiss

    data = output.with_suffix(".ivfdata")
    data.unlink(missing_ok=True)
    index = faiss.read_index(str(trained))
    ivf = faiss.extract_index_ivf(index)
    parts = [faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY) for path in lists]
    vector = faiss.InvertedListsPtrVector()
    for part in parts:
        vector.push_back(faiss.extract_index_ivf(part).invlists)
    with _native_stdout_to_log():  # FAISS reports the data file's size
        merged = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(data))
        total = merged.merge_from_multiple(vector.data(), vector.size(), False)
    index.ntotal = ivf.ntotal = total
    ivf.replace_invlists(merged, True)
    merged.this.disown()
    faiss.write_index(index, str(output))
    del index, ivf, parts  # unmaps the merged lists: the data file is complete


@contextlib.contextmanager
def _native_stdout_to_log() -> Iterator[None]:
    """What native code prints on the process's stdout meanwhile goes to this module's log (debug level)
    instead: commands print their JSON on stdout, and people read stderr (FAISS names every mapped list file
    it opens: forty lines of file paths in a command's progress otherwise)."""
    import ctypes
    import tempfile

    sys.stdout.flush()
    libc = ctypes.CDLL(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            yield
        finally:
            libc.fflush(None)  # C's buffered stdout goes out while fd 1 is still the sink
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            said = sink.read().decode(errors="replace").strip()
            if said:
                logger.debug("FAISS said: %s", said)


def _probing(nprobe: int | None):  # noqa: ANN202 - faiss.SearchParametersIVF | None
    """Search parameters probing ``nprobe`` lists for this one search; None: the index's own setting."""
    if nprobe is None:
        return None
    import faiss

    return faiss.SearchParametersIVF(nprobe=int(nprobe))


def _copy(index):  # noqa: ANN001, ANN202
    import faiss

    return faiss.clone_index(index)


def _reranked(
    queries: np.ndarray, found: np.ndarray, vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest of each query's ``found`` rows of ``vectors`` (-1: none), by exact squared L2."""
    valid = found >= 0
    picked = np.asarray(vectors[np.where(valid, found, 0)], dtype=np.float32)  # (Q, F, D)
    dist = ((picked - queries[:, None, :]) ** 2).sum(axis=-1)
    dist[~valid] = np.inf
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(dist, order, axis=1)
    rows = np.take_along_axis(found, order, axis=1)
    rows[~np.isfinite(best)] = -1
    return best.astype(np.float32), rows.astype(np.int64)


@dataclass
class SQ8Lists:
    """A searcher's merged lists (one mapped ``.ivfdata`` file) of 8-bit codes, as :func:`native.sq8_scan`
    reads them: FAISS's own file, read in place (the kernel scans each list once for all the queries that
    probe it, 2.2-2.7x faster than FAISS's scan at 100,000 pictures, ``benchmarks/bench_sq8_scan.py``)."""

    data: np.ndarray  # the lists' file, uint8, mapped (FAISS's map: kept alive by the searcher's index)
    layout: np.ndarray  # (nlist, 3) int64: byte offset, size, capacity of every list
    centres: np.ndarray  # (nlist, d) float32: the lists' centres (codes are residuals from them)
    vmin: np.ndarray  # (d,) float32: the quantizer's ranges
    vdiff: np.ndarray
    active: int  # dimensions past this one are zero padding (19 of 24 for the analyzer's descriptors)

    def populate(self) -> bool:
        """Map every page of the lists into this process now (``MADV_POPULATE_READ``, Linux 5.14+), so that
        the first checks do not stop on each page they touch (2.8 GB at 100,000 pictures: 0.2 s once the files
        are in the page cache). False where the system does not offer it."""
        import ctypes

        if not sys.platform.startswith("linux") or self.data.nbytes == 0:
            return False
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        address = self.data.ctypes.data
        start = address - address % mmap.PAGESIZE
        return libc.madvise(start, self.data.nbytes + address - start, _MADV_POPULATE_READ) == 0

    @classmethod
    def of(cls, ivf, parts: list) -> SQ8Lists | None:  # noqa: ANN001 - faiss indexes
        """The lists of ``ivf`` when the kernel can scan them: one merged file, 8-bit codes with a range per
        dimension, by residual, L2, and the kernel available; None otherwise."""
        import faiss

        if len(parts) != 1 or not native.available(torch.device("cpu")):
            return None
        index = faiss.downcast_index(parts[0])
        if not isinstance(index, faiss.IndexIVFScalarQuantizer) or index.metric_type != faiss.METRIC_L2:
            return None
        if index.sq.qtype != faiss.ScalarQuantizer.QT_8bit or not index.by_residual:
            return None
        if index.d > native.FUSED_MAX_DIM or index.sq.rangestat != faiss.ScalarQuantizer.RS_minmax:
            return None
        lists = faiss.downcast_InvertedLists(index.invlists)
        if not isinstance(lists, faiss.OnDiskInvertedLists) or lists.totsize == 0:
            return None
        trained = faiss.vector_to_array(index.sq.trained).astype(np.float32)
        if trained.shape[0] != 2 * index.d:
            return None
        count = int(index.nlist)
        layout = np.empty((count, 3), dtype=np.int64)
        for i in range(count):
            one = lists.lists.at(i)
            layout[i] = (one.offset, one.size, one.capacity)
        ends = layout[:, 0] + layout[:, 2] * (index.code_size + 8)
        filled = layout[:, 1] > 0
        if index.code_size != index.d or (filled.any() and int(ends[filled].max()) > lists.totsize):
            return None  # not the layout the kernel reads: FAISS scans
        centres = np.ascontiguousarray(ivf.quantizer.reconstruct_n(0, count), dtype=np.float32)
        data = faiss.rev_swig_ptr(lists.ptr, int(lists.totsize))
        vmin, vdiff = trained[: index.d].copy(), trained[index.d :].copy()
        return cls(data, layout, centres, vmin, vdiff, native.sq8_active_dims(centres, vmin, vdiff))


class ShardedFaissSearch:
    """A FAISS IVF index whose lists are kept in one file per shard of the library, read through
    read-only memory maps and searched as one index: a query reads only the lists it probes, and adding
    pictures adds a file instead of rewriting the index.

    ``trained``: the empty trained index (file); ``lists``: one filled copy of it per shard, whose vectors
    carry their row in the stem's patch list as id."""

    kind = "faiss"

    def __init__(
        self, trained: Path, lists: list[Path], nprobe: int = 12, vectors: np.ndarray | None = None
    ) -> None:
        import faiss

        #: the searcher's vectors by id (float16, memory-mapped): compressed lists' hits are re-ranked exactly
        self.vectors = vectors

        self.index = faiss.read_index(str(trained))
        # every part is kept referenced: the stacked lists only point at theirs
        self._parts = [read_mapped(path) for path in lists]
        ivf = faiss.extract_index_ivf(self.index)
        for part in self._parts:
            other = faiss.extract_index_ivf(part)
            if other.nlist != ivf.nlist or other.d != ivf.d:
                raise ValueError("a shard's search lists do not belong to this index")
        if len(self._parts) == 1:  # merged lists (or one shard): read in place, not copied list by list
            ivf.replace_invlists(faiss.extract_index_ivf(self._parts[0]).invlists, False)
        else:
            self._vector = faiss.InvertedListsPtrVector()
            for part in self._parts:
                self._vector.push_back(faiss.extract_index_ivf(part).invlists)
            self._stacked = faiss.HStackInvertedLists(self._vector.size(), self._vector.data())
            ivf.replace_invlists(self._stacked, False)
        ivf.ntotal = sum(int(part.ntotal) for part in self._parts)
        self.index.ntotal = ivf.ntotal
        ivf.nprobe = nprobe
        self.nprobe = nprobe
        self._ivf = ivf
        # lists are chosen by the native kernel when it is there (:meth:`_choose_lists`); FAISS then scans
        # them with its threads over the queries (its default splits queries outside that call)
        ivf.parallel_mode = 3
        self._centres: tuple[torch.Tensor, torch.Tensor] | None = None
        self._sq8: SQ8Lists | None | bool = None  # False: not such lists

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of each query, probing ``nprobe`` lists (default: the index's)."""
        k = min(k, self.count)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        padded = for_faiss(queries, self.index.d)
        fetch = k if self.vectors is None else min(self.count, RERANK * k)
        dist, found = self._search(padded, fetch, nprobe or self.nprobe)
        if self.vectors is None:
            return dist, found.astype(np.int64)
        return _reranked(queries, found, self.vectors, k)

    def _search(self, padded: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's search of ``padded`` queries, the lists probed chosen by :meth:`_choose_lists` when it can."""
        import faiss

        nprobe = max(1, min(int(nprobe), int(self._ivf.nlist)))
        chosen = self._choose_lists(padded, nprobe) if padded.shape[0] else None
        if chosen is None:
            return self.index.search(padded, k, params=_probing(nprobe))
        centre_dist, lists = chosen
        scanned = self._sq8_lists()
        if scanned is not None and k <= native.knn_max_k():
            return native.sq8_scan(padded, lists, scanned.centres, scanned.data, scanned.layout, scanned.vmin,
                                   scanned.vdiff, k, scanned.active)
        dist = np.empty((padded.shape[0], k), dtype=np.float32)
        found = np.empty((padded.shape[0], k), dtype=np.int64)
        self._ivf.search_preassigned_c(
            padded.shape[0], faiss.swig_ptr(padded), k, faiss.swig_ptr(lists), faiss.swig_ptr(centre_dist),
            faiss.swig_ptr(dist), faiss.swig_ptr(found), False, faiss.SearchParametersIVF(nprobe=nprobe),
        )
        return dist, found

    def prepare(self) -> None:
        """Read what the first search would read first (the list centres and the merged lists' layout: about
        0.5 s over the 20 searchers of a 100,000-picture library) and map the lists' pages: a worker does it when
        it starts, once the index files are in the page cache (:mod:`.warmup`)."""
        lists = self._sq8_lists()
        if lists is not None:
            lists.populate()
        if native.available(torch.device("cpu")) and self._ivf.nlist and self._centres is None:
            self._choose_lists(np.zeros((1, self.index.d), dtype=np.float32), 1)

    def _sq8_lists(self) -> SQ8Lists | None:
        """The merged 8-bit lists as the native kernel scans them (:class:`SQ8Lists`), or None: FAISS scans."""
        if self._sq8 is None:
            self._sq8 = SQ8Lists.of(self._ivf, self._parts) or False
        return self._sq8 or None

    def _choose_lists(self, padded: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``nprobe`` nearest list centres of each query (distances, lists), by the native exact search:
        the same lists as FAISS's flat quantizer chooses, about 4x faster (a quarter of an analysis's FAISS
        time at 100,000 pictures). None without the kernel: FAISS chooses."""
        import faiss

        if not native.available(torch.device("cpu")) or nprobe > native.knn_max_k():
            return None
        quantizer = self._ivf.quantizer
        if not isinstance(faiss.downcast_index(quantizer), faiss.IndexFlatL2) or padded.shape[1] > native.FUSED_MAX_DIM:
            return None
        if self._centres is None:
            centres = torch.from_numpy(quantizer.reconstruct_n(0, self._ivf.nlist))
            self._centres = (native.panel(centres[None])[0], (centres * centres).sum(dim=1).contiguous())
        panel, norms = self._centres
        dist, lists = native.knn(torch.from_numpy(padded), panel, norms, int(self._ivf.nlist), nprobe)
        return np.ascontiguousarray(dist.numpy()), np.ascontiguousarray(lists.numpy())


Searcher = ExactSearch | FaissSearch | ShardedFaissSearch


def make_searcher(vectors: np.ndarray, exact_max: int, nprobe: int, force: str | None = None) -> Searcher:
    """Exact search for small sets, FAISS above ``exact_max`` vectors (``force``: "exact"/"faiss")."""
    kind = force or ("exact" if vectors.shape[0] <= exact_max else "faiss")
    if kind == "faiss" and vectors.shape[0] >= 64:
        return FaissSearch.build(vectors, nprobe)
    return ExactSearch(vectors)
